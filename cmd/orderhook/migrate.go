package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func (a *app) migrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending schema migrations (serve also applies them on start)",
		Long: `Apply every pending schema migration. On PostgreSQL an advisory lock makes
replicas that start together apply each migration once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := a.globals.openStore(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			applied, err := db.Migrate(cmd.Context())
			if err != nil {
				return err
			}
			for _, m := range applied {
				fmt.Fprintf(a.stdout, "applied %05d %s\n", m.Version, m.Name)
			}
			fmt.Fprintf(a.stdout, "%d migration(s) applied; schema is up to date\n", len(applied))
			return nil
		},
	}
	cmd.AddCommand(a.migrateStatusCmd())
	return cmd
}

func (a *app) migrateStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List migrations and whether each is applied",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := a.globals.openExisting(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			list, err := db.MigrationStatus(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(list)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tNAME\tSTATE")
			for _, m := range list {
				state := "pending"
				if m.Applied {
					state = "applied"
				}
				fmt.Fprintf(tw, "%05d\t%s\t%s\n", m.Version, m.Name, state)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
