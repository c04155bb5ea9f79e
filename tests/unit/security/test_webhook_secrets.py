"""Webhook targets are encrypted at rest and re-encrypted by ``secrets rotate-key``."""

from __future__ import annotations

import pytest

from aggregator.api.services.webhooks import aad
from aggregator.cli.commands.control import _reencrypt
from aggregator.metadata.webhook_models import Webhook
from aggregator.security import crypto
from tests.unit.api.helpers import Api

pytestmark = pytest.mark.unit
SECRET = "whsec-rotation-0123456789abcdef"


def test_rotate_key_reencrypts_webhook_targets(api: Api) -> None:
    body = {"name": "rot", "url": "http://127.0.0.1:9/hook/tok3n", "secret": SECRET,
            "events": ["run.failed"]}  # fmt: skip
    r = api.client.post("/api/v1/webhooks", json=body, headers=api.headers("editor"))
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    old = api.app.state.platform.box
    new = crypto.SecretBox(crypto.generate_key())
    with api.store.session() as s:
        assert _reencrypt(s, old, new) == 2  # the admin's MFA secret and the webhook
        s.commit()
    with api.store.session() as s:
        row = s.get(Webhook, wid)
        assert row is not None
        assert row.target_ciphertext.split(".")[1] == new.primary_id
        target = new.decrypt_json(row.target_ciphertext, aad(wid))
        assert target == {"url": "http://127.0.0.1:9/hook/tok3n", "secret": SECRET}
        with pytest.raises(crypto.DecryptionError):
            new.decrypt_json(row.target_ciphertext, aad("another-webhook"))
