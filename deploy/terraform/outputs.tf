output "web_url" {
  description = "The Cloud Run URL of the console (map your domain onto it)."
  value       = google_cloud_run_v2_service.web.uri
}

output "migrate_job" {
  description = "Run before every rollout: gcloud run jobs execute <this> --region <region> --wait"
  value       = google_cloud_run_v2_job.migrate.name
}

output "sql_instance" {
  description = "The Cloud SQL instance (backups: gcloud sql backups list --instance <this>)."
  value       = google_sql_database_instance.main.name
}

output "sql_connection_name" {
  value = google_sql_database_instance.main.connection_name
}

output "redis_host" {
  value = google_redis_instance.main.host
}

output "bigquery_dataset" {
  value = google_bigquery_dataset.logs.dataset_id
}

output "service_accounts" {
  description = "The identity of each process kind."
  value       = { for k, sa in local.service_accounts : k => sa.email }
}

output "secret_ids" {
  description = "Secret Manager secrets (add a version to rotate; staging keys: newest first, comma-separated)."
  value       = { for k, s in google_secret_manager_secret.app : k => s.secret_id }
}

output "vertex_bucket" {
  description = "VERTEX_STAGING_BUCKET: Vertex AI jobs' outputs (give tuning requests gs://<this>/… output URIs)."
  value       = "gs://${google_storage_bucket.vertex.name}"
}

output "vertex_jobs_service_account" {
  description = "VERTEX_SERVICE_ACCOUNT: the identity training jobs run as."
  value       = google_service_account.jobs.email
}
