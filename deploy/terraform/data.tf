# Cloud SQL for PostgreSQL (private IP, automated backups with point-in-time recovery), Memorystore for
# Redis (the Celery broker and the Django cache), and the BigQuery dataset for the log export.
resource "google_sql_database_instance" "main" {
  name                = "${var.name}-pg"
  database_version    = "POSTGRES_16"
  region              = var.region
  deletion_protection = var.deletion_protection
  depends_on          = [google_service_networking_connection.private_services]

  settings {
    tier              = var.db_tier
    edition           = "ENTERPRISE"
    availability_type = var.db_availability_type
    disk_autoresize   = true

    ip_configuration {
      ipv4_enabled    = false
      private_network = google_compute_network.main.id
      ssl_mode        = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      start_time                     = "02:00"
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = var.db_log_retention_days
      backup_retention_settings {
        retained_backups = var.db_backup_retained_count
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day  = 7
      hour = 3
    }

    insights_config {
      query_insights_enabled = true
    }
  }
}

resource "google_sql_database" "atalaya" {
  name     = "atalaya"
  instance = google_sql_database_instance.main.name
}

resource "random_password" "db" {
  length  = 32
  special = false
}

resource "google_sql_user" "atalaya" {
  name     = "atalaya"
  instance = google_sql_database_instance.main.name
  password = random_password.db.result
}

resource "google_redis_instance" "main" {
  name                    = "${var.name}-redis"
  tier                    = var.redis_tier
  memory_size_gb          = var.redis_memory_size_gb
  region                  = var.region
  redis_version           = "REDIS_7_2"
  authorized_network      = google_compute_network.main.id
  connect_mode            = "PRIVATE_SERVICE_ACCESS"
  auth_enabled            = true
  transit_encryption_mode = "DISABLED"
  # The Celery queue lives here: hourly RDB snapshots bring it back after a restart of the whole instance
  # (Memorystore for Redis has no append-only file; deploy/README.md, "Failure modes").
  persistence_config {
    persistence_mode    = "RDB"
    rdb_snapshot_period = "ONE_HOUR"
  }
  depends_on = [google_service_networking_connection.private_services]
}

resource "google_bigquery_dataset" "logs" {
  dataset_id                 = var.bigquery_dataset
  location                   = var.bigquery_location
  description                = "Atalaya: redacted LLM logs exported by the worker (the table is created on first export)."
  delete_contents_on_destroy = false
  depends_on                 = [google_project_service.apis]
}
