# Secret Manager: one secret per sensitive variable. Values generated here live in the Terraform state
# too; keep the state in a bucket only operators can read (see versions.tf).
resource "random_password" "django_secret_key" {
  length  = 64
  special = false
}

resource "random_password" "pii_token_key" {
  length  = 48
  special = false
}

# A Fernet key is 32 random bytes in URL-safe base64 with padding (random_id gives it unpadded).
resource "random_id" "staging_key" {
  byte_length = 32
}

locals {
  redis_auth = google_redis_instance.main.auth_string
  redis_base = "redis://:${local.redis_auth}@${google_redis_instance.main.host}:${google_redis_instance.main.port}"

  # secret id => [environment variable, value]. For e-mail over SMTP, add a secret for EMAIL_URL
  # (smtp+tls://user:password@host:587) the same way; without it e-mails are files in the container.
  secrets = {
    "django-secret-key" = ["DJANGO_SECRET_KEY", random_password.django_secret_key.result]
    "database-url" = [
      "DATABASE_URL",
      "postgres://${google_sql_user.atalaya.name}:${random_password.db.result}@${google_sql_database_instance.main.private_ip_address}:5432/${google_sql_database.atalaya.name}?sslmode=require",
    ]
    "broker-url"    = ["CELERY_BROKER_URL", "${local.redis_base}/0"]
    "cache-url"     = ["CACHE_URL", "${local.redis_base}/1"]
    "staging-keys"  = ["ATALAYA_STAGING_KEYS", "${random_id.staging_key.b64_url}="]
    "pii-token-key" = ["ATALAYA_PII_TOKEN_KEY", random_password.pii_token_key.result]
  }
}

resource "google_secret_manager_secret" "app" {
  for_each  = local.secrets
  secret_id = "${var.name}-${each.key}"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "app" {
  for_each    = local.secrets
  secret      = google_secret_manager_secret.app[each.key].id
  secret_data = each.value[1]
}
