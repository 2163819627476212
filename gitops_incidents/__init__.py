"""gitops-incidents: incident management for workflow platforms, kept as plain files in git."""
