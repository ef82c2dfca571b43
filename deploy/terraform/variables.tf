variable "project_id" {
  description = "The Google Cloud project."
  type        = string
}

variable "region" {
  description = "Region for Cloud Run, Cloud SQL and Memorystore."
  type        = string
  default     = "europe-west1"
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "atalaya"
}

variable "image" {
  description = "The Atalaya image (built from deploy/Dockerfile), e.g. europe-docker.pkg.dev/PROJECT/atalaya/atalaya:0.1.0."
  type        = string
}

variable "allowed_hosts" {
  description = "DJANGO_ALLOWED_HOSTS: the host names the console answers on (the first one is sent by the probes)."
  type        = list(string)
}

variable "base_url" {
  description = "ATALAYA_BASE_URL: the public URL, for links in e-mails."
  type        = string
}

variable "public" {
  description = "Let anyone reach the web service (the console has its own sign-in); false puts it behind IAM."
  type        = bool
  default     = true
}

variable "web_min_instances" {
  type    = number
  default = 1
}

variable "web_max_instances" {
  type    = number
  default = 10
}

variable "web_concurrency" {
  description = "gunicorn workers per web instance (WEB_CONCURRENCY)."
  type        = number
  default     = 2
}

variable "worker_instances" {
  description = "Celery worker instances (the beat pool always has exactly one)."
  type        = number
  default     = 2
}

variable "db_tier" {
  type    = string
  default = "db-custom-2-7680"
}

variable "db_availability_type" {
  description = "REGIONAL (high availability) or ZONAL."
  type        = string
  default     = "REGIONAL"
}

variable "db_backup_retained_count" {
  description = "Automated daily backups kept."
  type        = number
  default     = 14
}

variable "db_log_retention_days" {
  description = "Days of write-ahead log kept for point-in-time recovery (1 to 7)."
  type        = number
  default     = 7
}

variable "redis_memory_size_gb" {
  type    = number
  default = 1
}

variable "redis_tier" {
  description = "STANDARD_HA (replicated) or BASIC."
  type        = string
  default     = "STANDARD_HA"
}

variable "bigquery_location" {
  description = "BIGQUERY_LOCATION of the log export dataset."
  type        = string
  default     = "EU"
}

variable "bigquery_dataset" {
  description = "BIGQUERY_DATASET: the dataset id (the table is created by the export on first run)."
  type        = string
  default     = "atalaya"
}

variable "pii_scanner" {
  description = "PII_SCANNER: local or dlp."
  type        = string
  default     = "dlp"
}

variable "job_backend" {
  description = "JOB_BACKEND: vertex (tuning jobs and deployments on Vertex AI) or local."
  type        = string
  default     = "vertex"
}

variable "vertex_location" {
  description = "VERTEX_LOCATION: the region of Vertex AI jobs, models and endpoints (and of the jobs' bucket)."
  type        = string
  default     = "us-central1"
}

variable "trainer_image" {
  description = "VERTEX_TRAINER_IMAGE: the trainer container built from deploy/trainer/Dockerfile."
  type        = string
  default     = ""
}

variable "serving_image" {
  description = "VERTEX_SERVING_IMAGE: the serving container of uploaded model versions."
  type        = string
  default     = ""
}

variable "deletion_protection" {
  description = "Protect Cloud SQL, the dataset and the services from terraform destroy."
  type        = bool
  default     = true
}
