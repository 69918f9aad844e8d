# Federated-learning group (upstream: use-cases/federated-learning/terraform/_shared_config/
# uc_federated_learning_variables.tf). Types only, no validation blocks.

variable "federated_learning_cloud_storage_buckets" {
  type = map(object({
    force_destroy      = bool
    versioning_enabled = bool
  }))
  default = {}
}

variable "federated_learning_cloud_storage_buckets_iam_bindings" {
  type = list(object({
    bucket_name = string
    member      = string
    role        = string
  }))
  default = []
}

variable "federated_learning_external_services_allowed_namespaces" {
  type    = list(string)
  default = []
}

variable "federated_learning_tenant_names" {
  type    = list(string)
  default = ["fl-1"]
}

variable "federated_learning_node_pool_machine_type" {
  type    = string
  default = "n4-standard-8"
}
