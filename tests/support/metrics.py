"""``GET /metrics`` read as a scraper reads it (prometheus_client's own parser): each sample by
its name and labels, and what moved between two scrapes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

_Key = tuple[str, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class Scrape:
    """The samples of one scrape, by sample name (``…_total``, ``…_count``) and labels."""

    samples: Mapping[_Key, float]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        """The samples of ``text`` (the Prometheus text format)."""
        samples: dict[_Key, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in samples, f"{sample.name}{sample.labels} appears twice"
                samples[key] = sample.value
        return cls(samples)

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name`` with exactly ``labels`` (0 when there is none)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def label_values(self, name: str, label: str) -> list[str]:
        """The values of ``label`` over the samples named ``name``, one per sample."""
        return [
            value for (sample, labels), _ in self.samples.items() if sample == name
            for key, value in labels if key == label
        ]  # fmt: skip

    def __sub__(self, earlier: Scrape) -> Scrape:
        """What moved since ``earlier`` (a sample new since then moved from 0)."""
        keys = set(self.samples) | set(earlier.samples)
        return Scrape(
            {key: self.samples.get(key, 0.0) - earlier.samples.get(key, 0.0) for key in keys}
        )


async def scrape(client: httpx.AsyncClient) -> Scrape:
    """``GET /metrics`` of the server ``client`` talks to, checked and parsed."""
    answer = await client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain"), answer.headers
    return Scrape.parse(answer.text)
