# One service account per process kind, each with only what that process does:
#   web:    serves the console and the API, stages log events encrypted (no DLP, BigQuery or Vertex AI);
#           also runs the migrations job.
#   worker: scans with Cloud DLP, exports to BigQuery, calls Vertex AI.
#   beat:   only schedules tasks onto the broker.
resource "google_service_account" "web" {
  account_id   = "${var.name}-web"
  display_name = "Atalaya web and migrations"
}

resource "google_service_account" "worker" {
  account_id   = "${var.name}-worker"
  display_name = "Atalaya Celery worker"
}

resource "google_service_account" "beat" {
  account_id   = "${var.name}-beat"
  display_name = "Atalaya Celery beat"
}

locals {
  # Which secrets each identity may read (secretAccessor on that secret only, never project-wide).
  secret_access = {
    web    = ["django-secret-key", "database-url", "broker-url", "cache-url", "staging-keys"]
    worker = ["django-secret-key", "database-url", "broker-url", "cache-url", "staging-keys", "pii-token-key"]
    beat   = ["django-secret-key", "database-url", "broker-url", "cache-url"]
  }
  service_accounts = {
    web    = google_service_account.web
    worker = google_service_account.worker
    beat   = google_service_account.beat
  }
  secret_bindings = merge([
    for sa, ids in local.secret_access : { for id in ids : "${sa}/${id}" => { sa = sa, secret = id } }
  ]...)
}

resource "google_secret_manager_secret_iam_member" "access" {
  for_each  = local.secret_bindings
  secret_id = google_secret_manager_secret.app[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${local.service_accounts[each.value.sa].email}"
}

# Cloud SQL: the processes that open database connections. (They connect to the private IP; the role
# is what the Cloud SQL connectors and Auth Proxy check, should you switch to them or to IAM database auth.)
resource "google_project_iam_member" "cloudsql_client" {
  for_each = toset(["web", "worker"])
  project  = var.project_id
  role     = "roles/cloudsql.client"
  member   = "serviceAccount:${local.service_accounts[each.key].email}"
}

# Cloud DLP (PII_SCANNER=dlp): inspect_content and deidentify_content.
resource "google_project_iam_member" "worker_dlp" {
  project = var.project_id
  role    = "roles/dlp.user"
  member  = "serviceAccount:${google_service_account.worker.email}"
}

# BigQuery export: write to the one dataset, and run load/query jobs in the project.
resource "google_bigquery_dataset_iam_member" "worker_data_editor" {
  dataset_id = google_bigquery_dataset.logs.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_project_iam_member" "worker_bigquery_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.worker.email}"
}

# Vertex AI: tuning jobs, model registry and endpoints (the worker drives them).
resource "google_project_iam_member" "worker_vertex" {
  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = "serviceAccount:${google_service_account.worker.email}"
}
