# Config Management group (upstream: platforms/gke/base/_shared_config/configmanagement_variables.tf):
# the platform's own Config Sync. fedgen sets none of these; the group is here so a plan of cloud_storage
# and config_management sees the same declarations upstream's do.

variable "configmanagement_policy_dir" {
  type    = string
  default = ""
}

variable "configmanagement_prevent_drift" {
  type    = bool
  default = true
}

variable "configmanagement_sync_branch" {
  type    = string
  default = "main"
}

variable "configmanagement_sync_repo" {
  type    = string
  default = null
}
