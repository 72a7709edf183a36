"""The sandbox framework: routing by prefix, faults, clock, HTTP admin, determinism."""

from __future__ import annotations

import requests

from sync_pipelines.sandbox import Sandbox, SandboxVendor, json_response, route
from sync_pipelines.sandbox.core import discover_vendor_classes


class CounterVendor(SandboxVendor):
    name = "counter"
    prefix = "/counter"

    def reset(self, seed: int) -> None:
        import random

        self.values = [random.Random(seed).randint(0, 1000) for _ in range(3)]

    def evolve(self, rng):
        self.values.append(rng.randint(0, 1000))
        return {"added": 1}

    def env_vars(self, base_url):
        return {"COUNTER_URL": base_url}

    def control(self, action, payload):
        if action == "clear":
            self.values.clear()
            return len(self.values)
        raise KeyError(action)

    @route("GET", r"/values/(?P<index>\d+)")
    def value(self, request, index):
        return json_response({"value": self.values[int(index)], "now": self.clock.now().isoformat()})

    @route("GET", r"/values")
    def values_list(self, request):
        return json_response({"list": [{"v": v} for v in self.values]})


def start(seed=3):
    return Sandbox(seed=seed, vendors=[], extra_vendors=[CounterVendor])


def test_routes_env_and_determinism():
    with start() as a, start() as b:
        assert a.env() == {"COUNTER_URL": a.url("counter")}
        va = requests.get(a.url("counter") + "/values/0", timeout=5).json()["value"]
        vb = requests.get(b.url("counter") + "/values/0", timeout=5).json()["value"]
        assert va == vb  # same seed, same data
        assert requests.get(a.base_url + "/nowhere", timeout=5).status_code == 404
        assert requests.get(a.url("counter") + "/nope", timeout=5).status_code == 404


def test_faults_skip_times_and_path():
    with start() as sb:
        sb.faults.add("status", vendor="counter", path=r"^/values/\d+$", status=503, retry_after=2, skip=1, times=1)
        url = sb.url("counter")
        assert requests.get(url + "/values/0", timeout=5).status_code == 200  # skipped
        faulted = requests.get(url + "/values/0", timeout=5)
        assert faulted.status_code == 503 and faulted.headers["Retry-After"] == "2"
        assert requests.get(url + "/values/0", timeout=5).status_code == 200  # times used up
        assert requests.get(url + "/values", timeout=5).status_code == 200  # other path untouched


def test_http_admin_controls_faults_clock_evolve_and_vendor():
    with start() as sb:
        admin = sb.base_url + "/_sandbox"
        assert requests.get(admin + "/health", timeout=5).json()["vendors"] == ["counter"]
        requests.post(admin + "/faults", json={"kind": "status", "status": 429, "times": 1}, timeout=5)
        assert requests.get(sb.url("counter") + "/values", timeout=5).status_code == 429
        requests.post(admin + "/faults", json={"kind": "status", "status": 429, "times": 5}, timeout=5)
        requests.delete(admin + "/faults", timeout=5)
        assert requests.get(sb.url("counter") + "/values", timeout=5).status_code == 200

        before = sb.clock.now()
        requests.post(admin + "/clock", json={"advance_seconds": 8 * 86400}, timeout=5)
        assert (sb.clock.now() - before).days == 8

        requests.post(admin + "/evolve", json={"steps": 2}, timeout=5)
        assert len(sb.vendor("counter").values) == 5
        assert requests.post(admin + "/counter/clear", json={}, timeout=5).json() == {"result": 0}
        assert requests.post(admin + "/counter/unknown", json={}, timeout=5).status_code == 404

        requests.post(admin + "/reset", json={}, timeout=5)
        assert len(sb.vendor("counter").values) == 3


def test_every_bundled_vendor_declares_prefix_and_env():
    for name, cls in discover_vendor_classes().items():
        assert cls.name == name and cls.prefix.startswith("/")
    with Sandbox(seed=1) as sb:
        env = sb.env()
        for vendor in sb.vendors.values():
            assert any(v.startswith(sb.base_url + vendor.prefix) for v in env.values()), vendor.name


class OtherVendor(CounterVendor):
    """A second vendor drawing from its evolve rng, like a source added later."""

    name = "other"
    prefix = "/other"

    def env_vars(self, base_url):
        return {"OTHER_URL": base_url}


def test_a_vendors_evolution_does_not_depend_on_the_other_vendors():
    """Adding a vendor (Procore, Golioth...) must not change what the others evolve into."""
    alone = Sandbox(seed=5, vendors=[], extra_vendors=[CounterVendor])
    with_other = Sandbox(seed=5, vendors=[], extra_vendors=[OtherVendor, CounterVendor])  # evolved first
    alone.evolve(steps=4)
    with_other.evolve(steps=4)
    assert alone.vendor("counter").values == with_other.vendor("counter").values
    # each vendor has a stream of its own: same class, same seed, different name, other draws
    assert with_other.vendor("other").values[3:] != with_other.vendor("counter").values[3:]

    # reset() restarts every stream: the same evolution again
    evolved = list(alone.vendor("counter").values)
    alone.reset()
    alone.evolve(steps=4)
    assert alone.vendor("counter").values == evolved
    # another seed, another evolution
    alone.reset(seed=6)
    alone.evolve(steps=4)
    assert alone.vendor("counter").values[3:] != evolved[3:]


def test_bundled_vendors_evolve_alike_alone_or_together():
    """The real vendors: each evolves the same served alone as with every other vendor."""
    together = Sandbox(seed=11)
    together_changes = together.evolve(steps=3)
    for name in together.vendors:
        alone = Sandbox(seed=11, vendors=[name])
        assert alone.evolve(steps=3)[name] == together_changes[name], name
