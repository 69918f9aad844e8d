# Platform group (upstream: platforms/gke/base/_shared_config/platform_variables.tf). Every root module.

variable "platform_default_project_id" {
  type = string

  validation {
    condition     = var.platform_default_project_id != ""
    error_message = "platform_default_project_id must not be empty"
  }
}

variable "platform_default_region" {
  type    = string
  default = "us-east4"
}

variable "platform_name" {
  type    = string
  default = "dev"

  validation {
    condition     = length(var.platform_name) >= 1 && length(var.platform_name) <= 9
    error_message = "platform_name: 1 to 9 characters"
  }
}

variable "resource_name_prefix" {
  type    = string
  default = "acp"

  validation {
    condition     = length(var.resource_name_prefix) >= 1 && length(var.resource_name_prefix) <= 3
    error_message = "resource_name_prefix: 1 to 3 characters"
  }
}
