package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// versionInfo is the JSON output of version.
type versionInfo struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

func newVersionCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of cairn and of Go it was built with",
		Args:  cobra.NoArgs,
	}
	a.addOutputFlag(cmd, false)
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		asJSON, err := a.json()
		if err != nil {
			return err
		}
		v := versionInfo{Version: Version, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
		if asJSON {
			writeJSON(cmd.OutOrStdout(), v)
			return nil
		}
		fmt.Fprintf(cmd.OutOrStdout(), "cairn %s\n%s %s/%s\n", v.Version, v.Go, v.OS, v.Arch)
		return nil
	})
	return cmd
}
