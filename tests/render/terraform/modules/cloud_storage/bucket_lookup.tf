# cloud_storage creates one bucket per key of federated_learning_cloud_storage_buckets and binds each entry
# of federated_learning_cloud_storage_buckets_iam_bindings to the bucket it finds under bucket_name as a KEY
# of that map (not the bucket's full name). Restated as an output so plan fails the way apply would.

output "bound_buckets" {
  value = [for b in var.federated_learning_cloud_storage_buckets_iam_bindings : var.federated_learning_cloud_storage_buckets[b.bucket_name]]
}
