"""A dataset exported from annotations as the data of a tuning request (atalaya://datasets/<uuid>): a
chat dataset of the adapter's team is accepted, written out for the local runner at dispatch, and named in
the job's command line and the request's lineage; anything else is a 422 naming the problem."""

import json
from pathlib import Path

import pytest

from apps.common.exceptions import Unprocessable
from apps.feedback.services import adjudication_set, annotation_next, annotation_submit, dataset_export
from apps.registry.services import adapter_create, base_model_register
from apps.tuning.services import tuning_job_dispatch, tuning_request_create, tuning_request_submit
from apps.workflows.services import approval_decision_record
from tests.feedback.conftest import VALID


@pytest.fixture
def rated(world, events, queue):
    for user in (world.ann1, world.ann2):
        slot = annotation_next(actor=user, queue=queue)
        annotation_submit(actor=user, slot_id=slot.pk, values=VALID)
    from apps.feedback.models import Annotation

    adjudication_set(
        actor=world.gov, item=Annotation.objects.first().item, values={"corrected": "Fixed answer."}
    )
    return queue


@pytest.fixture
def adapter(world):
    model = base_model_register(
        actor=world.eng, team=world.support, provider="hugging_face", model_id="tiny", context_window=512
    )
    return adapter_create(actor=world.eng, base_model=model, name="tone")


def _request(world, adapter, uri, **extra):
    return tuning_request_create(
        actor=world.eng, adapter=adapter, train_dataset_uri=uri, estimated_hours=1, justification="j", **extra
    )


def test_a_chat_dataset_of_the_team_trains_on_the_local_runner(world, rated, adapter, settings):
    from apps.cloud.jobs.local import LocalJobBackend

    dataset = dataset_export(actor=world.gov, queue=rated, kind="sft")
    request = _request(world, adapter, dataset.uri)
    approval = tuning_request_submit(actor=world.eng, request=request)
    approval_decision_record(request_id=approval.pk, reviewer=world.gov, decision="approve", comment="")

    runner = LocalJobBackend(
        Path(settings.LOCAL_JOBS_DIR), ["true"]
    )  # the trainer's command is not the point
    request = tuning_job_dispatch(request_id=request.pk, backend=runner)
    assert request.job_name and not request.job_error
    argv = json.loads((Path(settings.LOCAL_JOBS_DIR) / request.job_name / "job.json").read_text())["argv"]
    written = Path(argv[argv.index("--train") + 1])
    assert written.parent == Path(settings.LOCAL_EXPORTED_DATASETS_DIR).resolve()
    assert written.read_text().strip() == dataset.content.strip()
    assert request.train_dataset_uri == dataset.uri  # the lineage keeps the dataset's own name


def test_what_cannot_train_is_refused(world, rated, adapter, settings):
    preference = dataset_export(actor=world.gov, queue=rated, kind="preference")
    with pytest.raises(Unprocessable, match="holds preference pairs"):
        _request(world, adapter, preference.uri)
    with pytest.raises(Unprocessable, match="no dataset of this team"):
        _request(world, adapter, "atalaya://datasets/00000000-0000-0000-0000-000000000000")
    with pytest.raises(Unprocessable, match="no dataset of this team"):
        _request(world, adapter, "atalaya://datasets/not-a-uuid")
    sft = dataset_export(actor=world.gov, queue=rated, kind="sft")
    other_model = base_model_register(
        actor=world.fin_eng, team=world.finance, provider="hugging_face", model_id="tiny", context_window=512
    )
    other = adapter_create(actor=world.fin_eng, base_model=other_model, name="ledger")
    with pytest.raises(Unprocessable, match="no dataset of this team"):
        tuning_request_create(
            actor=world.fin_eng,
            adapter=other,
            train_dataset_uri=sft.uri,
            estimated_hours=1,
            justification="j",
        )
    settings.JOB_BACKEND = "vertex"
    with pytest.raises(Unprocessable, match="Vertex AI reads its data from Cloud Storage"):
        _request(world, adapter, sft.uri)


def test_the_tuning_form_suggests_the_teams_chat_datasets(world, rated, adapter, client):
    sft = dataset_export(actor=world.gov, queue=rated, kind="sft")
    preference = dataset_export(actor=world.gov, queue=rated, kind="preference")
    client.force_login(world.eng)
    html = client.get("/tuning/new/").content.decode()
    assert f'<option value="{sft.uri}">' in html and preference.uri not in html
    assert 'list="tuning-datasets"' in html
