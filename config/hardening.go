package config

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Authentication modes of AuthConfig.Mode.
const (
	AuthNone  = "none"
	AuthToken = "token"
	AuthJWT   = "jwt"
)

// AuthConfig decides who may open a WebSocket. The credential travels in the
// upgrade request as "Authorization: Bearer <credential>" or, for browsers
// (which cannot set headers on a WebSocket), as the query parameter
// QueryParam. A request without a valid credential is refused with HTTP 401
// before the upgrade.
type AuthConfig struct {
	// Mode: none (anyone may connect), token (a static token of Tokens) or
	// jwt (a signed JSON Web Token, see JWT). "": none.
	Mode string `yaml:"mode"`
	// Tokens accepted in token mode. Empty: none (token mode then refuses
	// every client, so Validate rejects it).
	Tokens []string `yaml:"tokens"`
	// QueryParam names the query parameter that may carry the credential.
	// "": "token".
	QueryParam string    `yaml:"query_param"`
	JWT        JWTConfig `yaml:"jwt"`
}

// JWTConfig verifies JSON Web Tokens in jwt mode. Tokens must carry an "exp"
// claim; expired tokens are refused.
type JWTConfig struct {
	// Algorithm: HS256 (shared Secret) or RS256 (PublicKeyFile). "": HS256.
	Algorithm string `yaml:"algorithm"`
	// Secret is the HS256 key. "": none (required for HS256).
	Secret string `yaml:"secret"`
	// PublicKeyFile is a PEM RSA public key for RS256. "": none (required
	// for RS256).
	PublicKeyFile string `yaml:"public_key_file"`
	// Issuer, when set, must equal the token's "iss". "": not checked.
	Issuer string `yaml:"issuer"`
	// Audience, when set, must be among the token's "aud". "": not checked.
	Audience string `yaml:"audience"`
	// Leeway tolerates clock skew on exp/nbf/iat. 0: none.
	Leeway time.Duration `yaml:"leeway"`
}

// TLSConfig serves wss:// (and HTTPS admin) directly from the proxy. Both
// files empty: plain TCP (TLS terminated by a load balancer, if any).
type TLSConfig struct {
	// CertFile is a PEM certificate chain. "": no TLS.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile. "": no TLS.
	KeyFile string `yaml:"key_file"`
}

// Enabled reports whether the listener serves TLS.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

func (c *Config) validateHardening() []error {
	var errs []error
	l := c.Limits
	if l.MaxConnectionsPerIP < 0 || l.ConnectRate < 0 || l.ConnectRatePerIP < 0 {
		errs = append(errs, errors.New("limits: max_connections_per_ip, connect_rate and connect_rate_per_ip must be >= 0"))
	}
	for _, o := range c.AllowedOrigins {
		if o != "*" && !strings.Contains(o, "://") {
			errs = append(errs, fmt.Errorf("allowed_origins: %q is not an origin (scheme://host[:port]) or \"*\"", o))
		}
	}
	switch c.Auth.Mode {
	case AuthNone:
	case AuthToken:
		if len(c.Auth.Tokens) == 0 {
			errs = append(errs, errors.New("auth.mode token needs auth.tokens"))
		}
	case AuthJWT:
		j := c.Auth.JWT
		switch j.Algorithm {
		case "HS256":
			if j.Secret == "" {
				errs = append(errs, errors.New("auth.jwt.algorithm HS256 needs auth.jwt.secret"))
			}
		case "RS256":
			if j.PublicKeyFile == "" {
				errs = append(errs, errors.New("auth.jwt.algorithm RS256 needs auth.jwt.public_key_file"))
			}
		default:
			errs = append(errs, fmt.Errorf("auth.jwt.algorithm %q: want HS256 or RS256", j.Algorithm))
		}
	default:
		errs = append(errs, fmt.Errorf("auth.mode %q: want none, token or jwt", c.Auth.Mode))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file go together"))
	}
	return errs
}
