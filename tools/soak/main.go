// Command soak runs gracefulinit as PID 1 next to two hostile Nacos
// helpers for a while (make soak; SOAK_DURATION, default 10m): one that
// crash-loops (it dies at start, as the SDK's log.Fatalf makes it) and one
// that floods its stdout with log records for ever. Every second it samples
// each gracefulinit's CPU time and RSS and counts its helper processes. It
// then checks that the app was never touched (same process, never
// signalled, exit by the stop sequence's SIGTERM), prints the figures and
// exits non-zero when one is out of bounds: CPU over 1% of a core on
// average, RSS not flat, more than one helper at a time, the password in
// the log.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/procfs"
	"github.com/gracefulinit/gracefulinit/internal/testkit/pidns"
)

// Bounds of a passing soak.
const (
	maxCPUPercent = 1.0 // mean over the run, of one core
	// RSS is flat when the last tenth's mean is within this of the
	// second tenth's (the first tenth is warm-up).
	maxRSSGrowthKB = 2048
	warmUp         = 0.1
	password       = "soak-secret-pw"
	clockTicks     = 100 // USER_HZ on Linux
)

func main() {
	bin := flag.String("bin", "bin/gracefulinit", "the gracefulinit binary (make build)")
	duration := flag.Duration("duration", 10*time.Minute, "how long the helpers misbehave")
	keep := flag.Bool("keep", false, "keep the work directory (the logs) after the run")
	flag.Parse()
	if err := run(*bin, *duration, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// instance is one gracefulinit as PID 1 with one hostile helper.
type instance struct {
	name    string
	helper  string
	log     string
	cmd     *exec.Cmd
	done    chan struct{}
	init    int // host pid of gracefulinit
	app     int // host pid of the app
	appExe  string
	cpu     []uint64 // utime+stime ticks, one a second
	rssKB   []int64
	helpers int // most helper processes seen at once
	stopAt  time.Time
}

func run(bin string, duration time.Duration, keep bool) error {
	if duration <= 0 {
		return fmt.Errorf("-duration %v: give a positive duration (SOAK_DURATION=10m)", duration)
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return fmt.Errorf("%s --version: %v (run make build first)", bin, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return fmt.Errorf("%s --version said %q", bin, out)
	}
	version := f[1]
	dir, err := os.MkdirTemp("", "gracefulinit-soak-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	answer := "case \"$1\" in --version) echo 'gracefulinit-nacos " + version + "'; exit 0;; esac\n"
	helpers := map[string]string{
		// Dies at start, as a helper whose SDK refuses a TLS setting does.
		"crash-loop": answer + "read cfg\necho 'gracefulinit-nacos: TLS setting refused' >&2\nexit 3\n",
		// Floods its stdout with records for ever, the password in each.
		"flood": answer + "read cfg\nexec yes '{\"level\":\"INFO\",\"msg\":\"flood\",\"registry\":\"nacos\",\"password\":\"" + password + "\",\"n\":12345}'\n",
	}
	var insts []*instance
	defer func() {
		for _, in := range insts {
			if in.cmd.Process != nil {
				_ = syscall.Kill(-in.cmd.Process.Pid, syscall.SIGKILL)
			}
		}
	}()
	for _, name := range []string{"crash-loop", "flood"} {
		in := &instance{name: name, helper: filepath.Join(dir, name+".sh"), log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
		if err := os.WriteFile(in.helper, []byte("#!/bin/sh\n"+helpers[name]), 0o755); err != nil {
			return err
		}
		if err := in.start(bin); err != nil {
			return err
		}
		insts = append(insts, in)
	}
	for _, in := range insts {
		if err := in.waitReady(); err != nil {
			return err
		}
	}
	fmt.Printf("soak: %v, gracefulinit %s as PID 1, helpers %s\n", duration, version, strings.Join([]string{"crash-loop", "flood"}, " and "))
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.Now().Add(duration)
	lastPrint := time.Now()
	for now := time.Now(); now.Before(end); now = time.Now() {
		<-tick.C
		for _, in := range insts {
			if err := in.sample(); err != nil {
				return err
			}
		}
		if time.Since(lastPrint) >= time.Minute {
			lastPrint = time.Now()
			for _, in := range insts {
				fmt.Printf("  %-10s %4.0fs  cpu %5.2f%%  rss %d kB\n", in.name, time.Since(end.Add(-duration)).Seconds(), in.cpuPercent(0, len(in.cpu)), in.rssKB[len(in.rssKB)-1])
			}
		}
	}
	var failures []string
	for _, in := range insts {
		failures = append(failures, in.stop()...)
	}
	fmt.Println()
	fmt.Println("| helper | CPU mean (% of a core) | CPU max 10 s | RSS start / end / max (kB) | RSS growth (kB) | helpers at once | deaths | relayed | dropped | app |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, in := range insts {
		r := in.report()
		fmt.Printf("| %s | %.2f | %.2f | %d / %d / %d | %+d | %d | %d | %d | %d | %s |\n",
			in.name, r.cpu, r.cpuMax10, r.rssStart, r.rssEnd, r.rssMax, r.rssGrowth, in.helpers, r.deaths, r.relayed, r.dropped, r.app)
		failures = append(failures, r.failures...)
	}
	if len(failures) > 0 {
		return errors.New("failed:\n  " + strings.Join(failures, "\n  "))
	}
	fmt.Println("soak passed")
	return nil
}

func (in *instance) start(bin string) error {
	logf, err := os.Create(in.log)
	if err != nil {
		return err
	}
	argv := pidns.Argv(bin, "--log-format", "json", "-v",
		"--registry", "nacos", "--nacos-mode", "register", "--nacos-addr", "http://127.0.0.1:1",
		"--service", "soak", "--ip", "127.0.0.1", "--port", "9", "--nacos-helper", in.helper,
		"--", "sleep", "1000000")
	in.cmd = exec.Command(argv[0], argv[1:]...)
	in.cmd.Env = append(os.Environ(), "GRACEFULINIT_NACOS_USERNAME=nacos", "GRACEFULINIT_NACOS_PASSWORD="+password)
	in.cmd.Stdout, in.cmd.Stderr = logf, logf
	in.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := in.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %v", in.name, err)
	}
	go func() { _ = in.cmd.Wait(); logf.Close(); close(in.done) }()
	return nil
}

func (in *instance) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if in.init = pidns.ReadyInit(in.cmd.Process.Pid, true); in.init != 0 {
			for _, pid := range procfs.Descendants(in.init) {
				if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); filepath.Base(exe) == "sleep" {
					in.app, in.appExe = pid, exe
					return nil
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s: gracefulinit or its app did not start within 20s (log: %s)", in.name, in.log)
}

func (in *instance) sample() error {
	f, err := procfs.Stat(in.init)
	if err != nil || len(f) < 13 {
		return fmt.Errorf("%s: gracefulinit (pid %d) is gone: %v (log: %s)", in.name, in.init, err, in.log)
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	in.cpu = append(in.cpu, ut+st)
	rss, err := statusKB(in.init, "VmRSS")
	if err != nil {
		return err
	}
	in.rssKB = append(in.rssKB, rss)
	n := 0
	for _, pid := range procfs.Descendants(in.init) {
		if pid == in.app {
			continue
		}
		if s, err := procfs.Stat(pid); err == nil && len(s) > 0 && s[0] != "Z" {
			n++
		}
	}
	in.helpers = max(in.helpers, n)
	return nil
}

// cpuPercent is the mean CPU use between samples i and j, in % of a core.
func (in *instance) cpuPercent(i, j int) float64 {
	if j-1 <= i {
		return 0
	}
	return float64(in.cpu[j-1]-in.cpu[i]) / clockTicks / float64(j-1-i) * 100
}

// stop checks the app is the one started and untouched, then stops
// gracefulinit with SIGTERM and checks the stop.
func (in *instance) stop() []string {
	var fail []string
	if f, err := procfs.Stat(in.app); err != nil || len(f) == 0 || f[0] == "Z" {
		fail = append(fail, fmt.Sprintf("%s: the app (pid %d) is gone before the stop", in.name, in.app))
	} else if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", in.app)); exe != in.appExe {
		fail = append(fail, fmt.Sprintf("%s: pid %d is no longer the app", in.name, in.app))
	}
	in.stopAt = time.Now()
	_ = syscall.Kill(in.init, syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(60 * time.Second):
		fail = append(fail, in.name+": gracefulinit did not exit within 60s of SIGTERM")
		_ = syscall.Kill(-in.cmd.Process.Pid, syscall.SIGKILL)
		<-in.done
	}
	return fail
}

type result struct {
	cpu, cpuMax10                     float64
	rssStart, rssEnd, rssMax          int64
	rssGrowth                         int64
	deaths, relayed, dropped, signals int
	exitCode                          int
	app                               string
	failures                          []string
}

func (in *instance) report() result {
	var r result
	n := len(in.cpu)
	r.cpu = in.cpuPercent(0, n)
	for i := 0; i+10 < n; i++ {
		r.cpuMax10 = max(r.cpuMax10, in.cpuPercent(i, i+11))
	}
	tenth := max(n/10, 1)
	r.rssStart, r.rssEnd, r.rssMax = in.rssKB[0], in.rssKB[n-1], slices.Max(in.rssKB)
	r.rssGrowth = meanKB(in.rssKB[n-tenth:]) - meanKB(in.rssKB[min(int(warmUp*float64(n)), n-1):min(int(warmUp*float64(n))+tenth, n)])
	r.exitCode = in.cmd.ProcessState.ExitCode()
	b, err := os.ReadFile(in.log)
	if err != nil {
		r.failures = append(r.failures, err.Error())
		return r
	}
	if strings.Contains(string(b), password) {
		r.failures = append(r.failures, in.name+": the password reached gracefulinit's log")
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		switch m["msg"] {
		case "nacos helper died; restarting it":
			r.deaths++
		case "flood":
			r.relayed++
		case "nacos helper: log lines dropped over the relay's limit":
			d, _ := m["dropped"].(float64)
			r.dropped += int(d)
		case "forwarded signal":
			// The stop's own SIGTERM is logged so too; only those before it count.
			if at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["time"])); err == nil && at.Before(in.stopAt) {
				r.signals++
			}
		}
	}
	// sleep dies of the stop sequence's SIGTERM: 128+15.
	r.app = fmt.Sprintf("same pid, %d signals forwarded, exit %d", r.signals, r.exitCode)
	if r.signals > 0 || r.exitCode != 143 {
		r.failures = append(r.failures, fmt.Sprintf("%s: the app was touched: %d signals forwarded before the stop, gracefulinit exit %d (want 143, the stop's SIGTERM)", in.name, r.signals, r.exitCode))
	}
	if r.cpu >= maxCPUPercent {
		r.failures = append(r.failures, fmt.Sprintf("%s: gracefulinit used %.2f%% of a core on average, want under %.0f%%", in.name, r.cpu, maxCPUPercent))
	}
	if r.rssGrowth > maxRSSGrowthKB {
		r.failures = append(r.failures, fmt.Sprintf("%s: RSS grew by %d kB from the warm-up to the end, want at most %d", in.name, r.rssGrowth, maxRSSGrowthKB))
	}
	if in.helpers > 1 {
		r.failures = append(r.failures, fmt.Sprintf("%s: %d helpers ran at once", in.name, in.helpers))
	}
	if in.name == "crash-loop" && r.deaths < 2 {
		r.failures = append(r.failures, fmt.Sprintf("%s: %d helper deaths logged: the helper did not crash-loop", in.name, r.deaths))
	}
	if in.name == "flood" && r.dropped == 0 {
		r.failures = append(r.failures, in.name+": no drop reported: the helper did not flood")
	}
	return r
}

func meanKB(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	var s int64
	for _, x := range xs {
		s += x
	}
	return s / int64(len(xs))
}

// statusKB reads a "Key:  N kB" line of /proc/PID/status.
func statusKB(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, key)
}
