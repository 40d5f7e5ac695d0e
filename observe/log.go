package observe

import (
	"io"
	"time"

	"wsproxy/config"

	"github.com/rs/zerolog"
)

// NewLogger builds the process logger: JSON lines by default, a console
// format with log.format: pretty.
func NewLogger(cfg config.LogConfig, w io.Writer) zerolog.Logger {
	if cfg.Format == "pretty" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	lvl, err := zerolog.ParseLevel(cfg.Level)
	if err != nil || cfg.Level == "" {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}
