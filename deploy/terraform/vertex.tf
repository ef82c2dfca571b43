# Vertex AI (JOB_BACKEND=vertex): a bucket for the jobs' outputs (adapters, metrics.json) and the SDK's
# staging, and the identity the training jobs run as. The worker drives Vertex (roles/aiplatform.user,
# in iam.tf); the jobs themselves run as `jobs`, which only the worker may act as.
resource "google_storage_bucket" "vertex" {
  name                        = "${var.project_id}-${var.name}-vertex"
  location                    = upper(var.vertex_location)
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
}

resource "google_service_account" "jobs" {
  account_id   = "${var.name}-jobs"
  display_name = "Atalaya Vertex AI training jobs"
}

# The trainer reads its datasets and writes the adapter and metrics.json here. Datasets kept in another
# bucket need roles/storage.objectViewer for this account on that bucket.
resource "google_storage_bucket_iam_member" "jobs_objects" {
  bucket = google_storage_bucket.vertex.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.jobs.email}"
}

# The worker reads each finished job's metrics.json.
resource "google_storage_bucket_iam_member" "worker_objects" {
  bucket = google_storage_bucket.vertex.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.worker.email}"
}

# Starting a job that runs as `jobs` needs iam.serviceAccounts.actAs on that account, and only on it.
resource "google_service_account_iam_member" "worker_acts_as_jobs" {
  service_account_id = google_service_account.jobs.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.worker.email}"
}
