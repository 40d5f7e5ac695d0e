package deploy

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// manifests are every object of deploy/k8s, decoded strictly into the
// Kubernetes API types: an unknown or misspelt field fails the test.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	pdbs        []*policyv1.PodDisruptionBudget
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	configMaps  []*corev1.ConfigMap
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in k8s/: %v", err)
	}
	var m manifests
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSep.Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			where := f + " document " + strconv.Itoa(i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			strict := func(into any) {
				if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
					t.Fatalf("%s (%s %s): %v", where, tm.APIVersion, tm.Kind, err)
				}
			}
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				o := &appsv1.Deployment{}
				strict(o)
				m.deployments = append(m.deployments, o)
			case "v1 Service":
				o := &corev1.Service{}
				strict(o)
				m.services = append(m.services, o)
			case "policy/v1 PodDisruptionBudget":
				o := &policyv1.PodDisruptionBudget{}
				strict(o)
				m.pdbs = append(m.pdbs, o)
			case "autoscaling/v2 HorizontalPodAutoscaler":
				o := &autoscalingv2.HorizontalPodAutoscaler{}
				strict(o)
				m.hpas = append(m.hpas, o)
			case "v1 ConfigMap":
				o := &corev1.ConfigMap{}
				strict(o)
				m.configMaps = append(m.configMaps, o)
			default:
				t.Fatalf("%s: unexpected %q %q", where, tm.APIVersion, tm.Kind)
			}
		}
	}
	if len(m.deployments) != 1 || len(m.services) < 1 || len(m.pdbs) != 1 || len(m.hpas) != 1 || len(m.configMaps) != 1 {
		t.Fatalf("want one Deployment, Services, one PDB, one HPA, one ConfigMap; have %d %d %d %d %d",
			len(m.deployments), len(m.services), len(m.pdbs), len(m.hpas), len(m.configMaps))
	}
	return m
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// effective is the part of `wsproxy check-config` output the manifests
// depend on.
type effective struct {
	Listen          string `json:"listen"`
	ShutdownTimeout string `json:"shutdown_timeout"`
	DemoPage        bool   `json:"demo_page"`
	Admin           struct {
		Listen      string `json:"listen"`
		DrainWindow string `json:"drain_window"`
	} `json:"admin"`
	Sources struct {
		Demo struct {
			Enabled bool `json:"enabled"`
		} `json:"demo"`
	} `json:"sources"`
	Memory struct {
		Threshold int64 `json:"threshold"`
	} `json:"memory"`
}

// checkConfig validates a config.yaml with the real binary and returns its
// effective values (defaults applied).
func checkConfig(t *testing.T, content string) effective {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	// runClean: the test's own environment must not leak into the
	// effective config.
	out, errOut, code := runClean(t, nil, "check-config", "-config", path)
	if code != 0 {
		t.Fatalf("the ConfigMap's config.yaml is invalid: exit %d: %s", code, errOut)
	}
	var e effective
	if err := yaml.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("check-config output: %v\n%s", err, out)
	}
	return e
}

func port(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

func dur(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// containerPort resolves a probe or Service port (number or name) against
// the container's ports.
func containerPort(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, p.StrVal)
	return 0
}

func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	d, cm := m.deployments[0], m.configMaps[0]
	pod := d.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]

	// The config the pod runs: mounted from the ConfigMap at the path of -config.
	cfgArg := ""
	for i, a := range c.Args {
		if a == "-config" && i+1 < len(c.Args) {
			cfgArg = c.Args[i+1]
		}
	}
	if cfgArg == "" {
		t.Fatalf("container args %v: no -config", c.Args)
	}
	var mount *corev1.VolumeMount
	for i := range c.VolumeMounts {
		if strings.HasPrefix(cfgArg, c.VolumeMounts[i].MountPath+"/") {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil {
		t.Fatalf("-config %s is on no volume mount", cfgArg)
	}
	var vol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == mount.Name {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.ConfigMap == nil || vol.ConfigMap.Name != cm.Name {
		t.Fatalf("volume %s is not the ConfigMap %s", mount.Name, cm.Name)
	}
	key := strings.TrimPrefix(cfgArg, mount.MountPath+"/")
	content, ok := cm.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", cm.Name, key)
	}
	cfg := checkConfig(t, content)
	if cfg.Sources.Demo.Enabled || cfg.DemoPage {
		t.Fatalf("the ConfigMap runs the demo feed (%v) or page (%v)", cfg.Sources.Demo.Enabled, cfg.DemoPage)
	}

	// Ports and probes against the effective (default-filled) config: the
	// probes ask the listener that serves /livez and /readyz.
	wsPort := port(t, cfg.Listen)
	probeAddr := cfg.Listen
	if cfg.Admin.Listen != "" {
		probeAddr = cfg.Admin.Listen
	}
	probePort := port(t, probeAddr)
	var ports []int32
	for _, cp := range c.Ports {
		ports = append(ports, cp.ContainerPort)
	}
	if !slices.Contains(ports, wsPort) || !slices.Contains(ports, probePort) {
		t.Fatalf("container ports %v, config listens on %d and serves probes on %d", ports, wsPort, probePort)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/livez"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Fatalf("no HTTP %s probe", p.name)
		}
		if p.probe.HTTPGet.Path != p.path || containerPort(t, c, p.probe.HTTPGet.Port) != probePort {
			t.Errorf("%s probe %s port %v, want %s on %d", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path, probePort)
		}
	}

	// preStop starts a drain and waits its window; the grace period covers
	// the drain window plus shutdown_timeout.
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil {
		t.Fatal("no preStop exec hook")
	}
	hook := c.Lifecycle.PreStop.Exec.Command
	if len(hook) < 2 || hook[1] != "drain" || !slices.Contains(hook, "-wait") || !slices.Contains(hook, cfgArg) {
		t.Fatalf("preStop %v: want the binary's drain -wait with -config %s", hook, cfgArg)
	}
	grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
	need := dur(t, cfg.Admin.DrainWindow) + dur(t, cfg.ShutdownTimeout)
	if grace == nil || time.Duration(*grace)*time.Second <= need {
		t.Fatalf("terminationGracePeriodSeconds %s, want more than drain_window + shutdown_timeout = %s", secs(grace), need)
	}

	// Resources, user, filesystem.
	req := c.Resources.Requests
	if req.Cpu().IsZero() || req.Memory().IsZero() {
		t.Fatalf("resource requests %v", req)
	}
	if lim := c.Resources.Limits.Memory(); !lim.IsZero() && cfg.Memory.Threshold >= lim.Value() {
		t.Fatalf("memory.threshold %d is not below the memory limit %s: the monitor would act after the OOM killer", cfg.Memory.Threshold, lim)
	}
	psc, sc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Fatalf("pod security context %+v: want non-root", psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Fatalf("container security context %+v: want a read-only root and no privilege escalation", sc)
	}

	// Selectors: the Deployment, Services, PDB and HPA all reach these pods.
	podLabels := pod.Labels
	matches := func(sel map[string]string) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if podLabels[k] != v {
				return false
			}
		}
		return true
	}
	if d.Spec.Selector == nil || !matches(d.Spec.Selector.MatchLabels) {
		t.Fatalf("deployment selector %v does not match pod labels %v", d.Spec.Selector, podLabels)
	}
	var servedPorts []int32
	for _, s := range m.services {
		if !matches(s.Spec.Selector) {
			t.Errorf("service %s selector %v does not match the pods", s.Name, s.Spec.Selector)
		}
		for _, sp := range s.Spec.Ports {
			servedPorts = append(servedPorts, containerPort(t, c, sp.TargetPort))
		}
	}
	if !slices.Contains(servedPorts, wsPort) {
		t.Errorf("no Service reaches the WebSocket port %d (targets %v)", wsPort, servedPorts)
	}
	if pdb := m.pdbs[0]; pdb.Spec.Selector == nil || !matches(pdb.Spec.Selector.MatchLabels) || (pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil) {
		t.Errorf("pdb %s does not cover the pods or sets no budget", pdb.Name)
	}
	hpa := m.hpas[0]
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != d.Name || ref.APIVersion != "apps/v1" {
		t.Errorf("hpa targets %+v, want the Deployment %s", ref, d.Name)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 || hpa.Spec.MaxReplicas < *hpa.Spec.MinReplicas || len(hpa.Spec.Metrics) == 0 {
		t.Errorf("hpa replicas %v..%d metrics %d", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, len(hpa.Spec.Metrics))
	}
	// The annotations Prometheus scrapes by point at /metrics' listener.
	if p := pod.Annotations["prometheus.io/port"]; p != strconv.Itoa(int(probePort)) {
		t.Errorf("prometheus.io/port %q, want %d", p, probePort)
	}
	// Environment variables are keys the binary knows (an unknown WSPROXY_*
	// would stop it at start).
	var env []string
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "WSPROXY_") {
			env = append(env, e.Name+"=x")
		}
	}
	if _, errOut, code := runClean(t, env, "check-config", "-config", ""); code != 0 {
		t.Errorf("the container's environment is refused: %s", errOut)
	}
}

// A field the API types do not have fails decoding.
func TestManifestDecodingIsStrict(t *testing.T) {
	doc := "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec:\n  maxUnavailabel: 1\n"
	if err := yaml.UnmarshalStrict([]byte(doc), &policyv1.PodDisruptionBudget{}); err == nil || !strings.Contains(err.Error(), "maxUnavailabel") {
		t.Fatalf("misspelt field accepted: %v", err)
	}
}

// runClean runs the binary with exactly env (plus PATH and HOME).
func runClean(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	return runEnv(t, binary, append(base, env...), args...)
}

func secs(p *int64) string {
	if p == nil {
		return "unset"
	}
	return strconv.FormatInt(*p, 10) + "s"
}
