# Cloud Run: the web service (autoscaled on requests), the migrations job (run before each rollout),
# and two worker pools (Cloud Run's kind for processes that pull work instead of serving HTTP):
# the Celery workers, and exactly one beat. Worker pools are a Beta launch stage of Cloud Run; where
# that is not acceptable, run worker and beat from deploy/helm on GKE with the same image and
# service accounts (Workload Identity), and keep the rest of this configuration.
locals {
  plain_env = {
    DJANGO_SETTINGS_MODULE      = "console.settings.production"
    DJANGO_ALLOWED_HOSTS        = join(",", var.allowed_hosts)
    DJANGO_CSRF_TRUSTED_ORIGINS = join(",", [for h in var.allowed_hosts : "https://${h}"])
    ATALAYA_BASE_URL            = var.base_url
    GOOGLE_CLOUD_PROJECT        = var.project_id
    PII_SCANNER                 = var.pii_scanner
    WAREHOUSE                   = "bigquery"
    BIGQUERY_DATASET            = google_bigquery_dataset.logs.dataset_id
    BIGQUERY_TABLE              = "log_events"
    BIGQUERY_LOCATION           = var.bigquery_location
    JOB_BACKEND                 = var.job_backend
    VERTEX_LOCATION             = var.vertex_location
    VERTEX_STAGING_BUCKET       = "gs://${google_storage_bucket.vertex.name}"
    VERTEX_SERVICE_ACCOUNT      = google_service_account.jobs.email
    VERTEX_TRAINER_IMAGE        = var.trainer_image
    VERTEX_SERVING_IMAGE        = var.serving_image
    LOG_LEVEL                   = "INFO"
    LOG_FORMAT                  = "json"
    WEB_CONCURRENCY             = tostring(var.web_concurrency)
    # Sign-in with Google or OpenID Connect (README.md), off unless the client id is set; the client
    # secret belongs in secrets.tf (a secret for OIDC_RP_CLIENT_SECRET, readable by the web identity).
    # OIDC_RP_CLIENT_ID    = "1234-abc.apps.googleusercontent.com"
    # OIDC_PROVIDER_NAME   = "Google"
    # OIDC_DISCOVERY_URL   = "https://accounts.google.com/.well-known/openid-configuration"
    # OIDC_OP_ISSUER       = "https://accounts.google.com,accounts.google.com"
    # OIDC_GROUP_ROLES     = "@example.com=support:annotator"
    # OIDC_ALLOWED_DOMAINS = "example.com"
    # OIDC_DOMAIN_CLAIM    = "hd"
  }
  probe_host = var.allowed_hosts[0]
  gunicorn   = "exec gunicorn console.wsgi -b 0.0.0.0:8000 -w $${WEB_CONCURRENCY:-2} --access-logfile - --worker-tmp-dir /dev/shm"
}

resource "google_cloud_run_v2_service" "web" {
  name                = "${var.name}-web"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.web.email
    max_instance_request_concurrency = 40

    scaling {
      min_instance_count = var.web_min_instances
      max_instance_count = var.web_max_instances
    }

    vpc_access {
      egress = "PRIVATE_RANGES_ONLY"
      network_interfaces {
        network    = google_compute_network.main.id
        subnetwork = google_compute_subnetwork.run.id
      }
    }

    containers {
      image   = var.image
      command = ["sh", "-c", local.gunicorn]

      ports {
        container_port = 8000
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "1Gi"
        }
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.plain_env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = toset(local.secret_access.web)
        content {
          name = local.secrets[env.value][0]
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.app[env.value].secret_id
              version = "latest"
            }
          }
        }
      }

      # Ready to take traffic once the database, broker and cache answer; alive while /healthz does.
      startup_probe {
        period_seconds    = 5
        timeout_seconds   = 4
        failure_threshold = 24
        http_get {
          path = "/readyz"
          port = 8000
          http_headers {
            name  = "Host"
            value = local.probe_host
          }
        }
      }

      liveness_probe {
        period_seconds    = 15
        timeout_seconds   = 5
        failure_threshold = 3
        http_get {
          path = "/healthz"
          port = 8000
          http_headers {
            name  = "Host"
            value = local.probe_host
          }
        }
      }
    }
  }

  depends_on = [google_secret_manager_secret_iam_member.access, google_secret_manager_secret_version.app]
}

resource "google_cloud_run_v2_service_iam_member" "public" {
  count    = var.public ? 1 : 0
  name     = google_cloud_run_v2_service.web.name
  location = var.region
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# `gcloud run jobs execute atalaya-migrate --region REGION --wait` before every rollout (deploy/README.md).
resource "google_cloud_run_v2_job" "migrate" {
  name                = "${var.name}-migrate"
  location            = var.region
  deletion_protection = var.deletion_protection

  template {
    task_count = 1
    template {
      service_account = google_service_account.web.email
      max_retries     = 0
      timeout         = "900s"

      vpc_access {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = google_compute_network.main.id
          subnetwork = google_compute_subnetwork.run.id
        }
      }

      containers {
        image   = var.image
        command = ["python", "manage.py", "migrate", "--no-input"]

        dynamic "env" {
          for_each = local.plain_env
          content {
            name  = env.key
            value = env.value
          }
        }

        dynamic "env" {
          for_each = toset(local.secret_access.web)
          content {
            name = local.secrets[env.value][0]
            value_source {
              secret_key_ref {
                secret  = google_secret_manager_secret.app[env.value].secret_id
                version = "latest"
              }
            }
          }
        }
      }
    }
  }

  depends_on = [google_secret_manager_secret_iam_member.access, google_secret_manager_secret_version.app]
}

locals {
  pools = {
    worker = {
      instances = var.worker_instances
      command   = ["celery", "-A", "console", "worker", "--loglevel=INFO", "--concurrency=2"]
      sa        = google_service_account.worker.email
    }
    beat = {
      instances = 1 # exactly one beat
      command   = ["celery", "-A", "console", "beat", "--loglevel=INFO", "--schedule=/tmp/celerybeat-schedule"]
      sa        = google_service_account.beat.email
    }
  }
}

resource "google_cloud_run_v2_worker_pool" "pool" {
  for_each            = local.pools
  name                = "${var.name}-${each.key}"
  location            = var.region
  launch_stage        = "BETA"
  deletion_protection = var.deletion_protection

  scaling {
    scaling_mode          = "MANUAL"
    manual_instance_count = each.value.instances
  }

  template {
    service_account = each.value.sa

    vpc_access {
      egress = "PRIVATE_RANGES_ONLY"
      network_interfaces {
        network    = google_compute_network.main.id
        subnetwork = google_compute_subnetwork.run.id
      }
    }

    containers {
      image   = var.image
      command = each.value.command

      resources {
        limits = {
          cpu    = "1"
          memory = "1Gi"
        }
      }

      dynamic "env" {
        for_each = local.plain_env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = toset(local.secret_access[each.key])
        content {
          name = local.secrets[env.value][0]
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.app[env.value].secret_id
              version = "latest"
            }
          }
        }
      }
    }
  }

  depends_on = [google_secret_manager_secret_iam_member.access, google_secret_manager_secret_version.app]
}
