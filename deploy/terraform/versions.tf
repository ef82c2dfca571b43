terraform {
  required_version = ">= 1.6.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # State holds generated secrets (database password, keys): keep it in a bucket only operators can read.
  # backend "gcs" {
  #   bucket = "PROJECT-tfstate"
  #   prefix = "atalaya"
  # }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
