package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes, documented in the README.
const (
	exitOK       = 0
	exitProblems = 1 // a command failed or found problems (for example dead rows)
	exitUsage    = 2 // bad flags, arguments or configuration
)

// usageError marks an error caused by how orderhook was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// errProblemsFound makes a command exit 1 after printing its report.
var errProblemsFound = errors.New("problems found")

func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	default:
		return exitProblems
	}
}

// app carries what commands may touch of the outside world, so that tests
// drive the whole binary in-process.
type app struct {
	globals globalFlags
	getenv  func(string) string
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
}

// run executes orderhook with args (without the program name).
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	a := &app{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && isCobraUsageError(err) {
		fmt.Fprintln(stderr, cmd.UsageString())
		return usageError{err}
	}
	return err
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "orderhook",
		Short: "Receive Stripe webhooks durably and apply them in dependency order, exactly once",
		Long: `orderhook verifies Stripe webhooks on their raw bytes, commits each event to an
inbox before answering 2xx, and applies events only once what they depend on
exists (the customer for an invoice), whatever order Stripe delivers them in.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.bindEnv(cmd.Flags(), globalBindings()); err != nil {
				return err
			}
			// Every command checks the log flags, not only those that log:
			// a typo is a usage error wherever it is made.
			_, err := a.globals.logger(io.Discard)
			return err
		},
	}
	a.globals.register(root.PersistentFlags())
	root.AddCommand(
		a.serveCmd(),
		a.migrateCmd(),
		a.sendCmd(),
		a.benchCmd(),
	)
	root.AddCommand(a.opsCommands()...)
	return root
}

// isCobraUsageError recognizes cobra's own flag and argument errors.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "invalid argument", "flag needs an argument", "accepts ", "requires at least", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// envBinding maps a flag to its ORDERHOOK_* variable (and optional fallbacks).
type envBinding struct {
	flag string
	envs []string
}

// bindEnv sets every flag the user did not pass from the first set variable of
// its binding. Values go through the flag's own parser, so a bad value in the
// environment fails like a bad flag, naming the variable.
func (a *app) bindEnv(flags *pflag.FlagSet, bindings []envBinding) error {
	for _, b := range bindings {
		f := flags.Lookup(b.flag)
		if f == nil || f.Changed {
			continue
		}
		for _, name := range b.envs {
			v := a.getenv(name)
			if v == "" {
				continue
			}
			if err := setFlagFromEnv(f, v); err != nil {
				return usagef("%s=%q: %v", name, v, err)
			}
			break
		}
	}
	return nil
}

// setFlagFromEnv sets f from an environment value; list flags take a
// comma-separated value.
func setFlagFromEnv(f *pflag.Flag, v string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		var items []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		return sv.Replace(items)
	}
	return f.Value.Set(v)
}

// envHelp appends the environment variable names to each bound flag's usage.
func envHelp(flags *pflag.FlagSet, bindings []envBinding) {
	for _, b := range bindings {
		if f := flags.Lookup(b.flag); f != nil {
			f.Usage += " (env " + strings.Join(b.envs, ", ") + ")"
		}
	}
}
