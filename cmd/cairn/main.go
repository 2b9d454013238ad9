// Command cairn is the one binary of cairn: `cairn server` runs a node and
// the other subcommands are the command-line client. See package
// internal/cli.
package main

import (
	"os"

	"github.com/cairn-db/cairn/internal/cli"
)

func main() {
	os.Exit(cli.Main())
}
