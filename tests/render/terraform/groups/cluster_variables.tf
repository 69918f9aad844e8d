# Cluster group (upstream: platforms/gke/base/_shared_config/cluster_variables.tf). Every root module.

variable "cluster_project_id" {
  type    = string
  default = null # falls back to platform_default_project_id
}

variable "cluster_region" {
  type    = string
  default = "us-central1"

  validation {
    condition     = contains(["us-central1", "us-east4", "us-east5"], var.cluster_region)
    error_message = "cluster_region: one of us-central1, us-east4, us-east5"
  }
}
