"""How services authenticate to Kafka and MongoDB (shared/connections.py): nothing on the
embedded default; a user of their own, with the password from a file, in production."""

from __future__ import annotations

import ssl

import pytest

from shared.connections import kafka_options, mongo_credentials
from shared.secrets import MissingSecret
from shared.settings import ServiceSettings


def test_the_embedded_default_needs_no_credentials():
    settings = ServiceSettings(service_name="matching")
    assert kafka_options(settings) == {} and mongo_credentials(settings) == {}


def test_production_reads_each_password_from_its_file(tmp_path, monkeypatch):
    (tmp_path / "kafka").write_text("k" * 40)
    (tmp_path / "mongo").write_text("m" * 40)
    monkeypatch.setenv("KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "kafka"))
    monkeypatch.setenv("MONGODB_PASSWORD_FILE", str(tmp_path / "mongo"))
    settings = ServiceSettings(service_name="matching", environment="production",
                               kafka_security_protocol="SASL_SSL", mongodb_username="matching")
    kafka = kafka_options(settings)
    assert (kafka["security_protocol"], kafka["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (kafka["sasl_plain_username"], kafka["sasl_plain_password"]) == ("matching", "k" * 40)
    assert isinstance(kafka["ssl_context"], ssl.SSLContext)
    mongo = mongo_credentials(settings)
    assert (mongo["username"], mongo["password"], mongo["authSource"]) == (
        "matching", "m" * 40, "mentorship_matching")


def test_a_missing_password_stops_a_production_service(monkeypatch):
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)
    monkeypatch.delenv("KAFKA_SASL_PASSWORD_FILE", raising=False)
    settings = ServiceSettings(service_name="matching", environment="production",
                               kafka_security_protocol="SASL_SSL")
    with pytest.raises(MissingSecret, match="KAFKA_SASL_PASSWORD"):
        kafka_options(settings)
