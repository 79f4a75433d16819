package main

import "github.com/spf13/cobra"

// sendCmd is replaced by the real implementation.
func (a *app) sendCmd() *cobra.Command { return &cobra.Command{Use: "send"} }
