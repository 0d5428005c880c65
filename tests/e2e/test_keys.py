"""test_keys.py - --api-key-file: every key of the file is accepted next to --api-key, its name
(never the key) is in the access log and in the per-key metric, SIGHUP re-reads the file, and a
bad file stops the start with the file and line named (or, at a reload, keeps the old keys)."""
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest

from harness import GRU_SERVE, Server, assert_error, main, tiny_models


def access_lines(srv):
    return [json.loads(l) for l in list(srv.log) if l.startswith("{") and '"access"' in l]


class Keys(unittest.TestCase):
    def setUp(self):
        fd, self.path = tempfile.mkstemp(prefix="gru-e2e-keys-")
        with os.fdopen(fd, "w") as f:
            f.write("# test keys\n\nkey-ci-0001  ci\r\n  key-dash-0002\tdashboard\nkey-noname-3\n")

    def tearDown(self):
        os.unlink(self.path)

    def post(self, srv, key, rid):
        h = {"X-Request-Id": rid}
        if key is not None:
            h["Authorization"] = "Bearer " + key
        return srv.request("POST", "/v1/sentiment", {"text": "good"}, headers=h)

    def wait_log(self, srv, rid, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for a in access_lines(srv):
                if a.get("request_id") == rid:
                    return a
            time.sleep(0.02)
        raise AssertionError("no access line for " + rid)

    def test_key_file(self):
        srv = Server(models=tiny_models(), api_key_file=self.path, api_key="single-key").start()
        try:
            for key, name in (("key-ci-0001", "ci"), ("key-dash-0002", "dashboard"), ("key-noname-3", "line-5"),
                              ("single-key", "api-key")):
                status, _, body = self.post(srv, key, "k-" + name)
                self.assertEqual(status, 200, body)
                line = self.wait_log(srv, "k-" + name)
                self.assertEqual(line["key"], name)
            for i, key in enumerate((None, "key-ci-000", "key-ci-00011", "ci", "")):
                status, h, body = self.post(srv, key, "bad-%d" % i)
                assert_error(self, status, h, body, 401, "unauthorized")
                self.assertNotIn("key", self.wait_log(srv, "bad-%d" % i))
            # The keys themselves are never written anywhere.
            self.assertFalse([l for l in srv.log if "key-ci-0001" in l or "key-dash-0002" in l])
            m = srv.metrics({"Authorization": "Bearer key-ci-0001"})
            self.assertGreaterEqual(m.get('gru_api_key_requests_total{key="ci"}', 0), 1)
            self.assertGreaterEqual(m.get('gru_api_key_requests_total{key="dashboard"}', 0), 1)
            self.assertFalse([k for k in m if "key-ci" in k])
            # SIGHUP re-reads the file: a new key works, a removed one is refused.
            with open(self.path, "w") as f:
                f.write("key-new-0004 newcomer\nkey-dash-0002 dashboard\n")
            srv.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while time.time() < deadline and self.post(srv, "key-new-0004", "poll")[0] != 200:
                time.sleep(0.02)
            self.assertEqual(self.post(srv, "key-new-0004", "k-new")[0], 200)
            self.assertEqual(self.wait_log(srv, "k-new")["key"], "newcomer")
            self.assertEqual(self.post(srv, "key-ci-0001", "k-gone")[0], 401)
            self.assertEqual(self.post(srv, "single-key", "k-single")[0], 200)
            # A broken file at a reload: the keys in use stay, the reason is logged.
            with open(self.path, "w") as f:
                f.write("key-x one two\n")
            n_logs = len(srv.log)
            srv.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while time.time() < deadline and not any("line 1" in l for l in srv.log[n_logs:]):
                time.sleep(0.02)
            self.assertTrue(any("more than a key and a name" in l for l in srv.log[n_logs:]), srv.log[n_logs:])
            self.assertEqual(self.post(srv, "key-new-0004", "k-kept")[0], 200)
        finally:
            rc = srv.stop()
        self.assertEqual(rc, 0, "".join(srv.log[-20:]))

    def test_bad_file_stops_the_start(self):
        with open(self.path, "w") as f:
            f.write("# nothing\n\nkey-a a\nkey-a b\n")
        out = subprocess.run([GRU_SERVE, "--models-dir", tiny_models(), "--port", "0", "--api-key-file", self.path],
                             capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("line 4: the same key as a", out.stderr)
        self.assertNotIn("key-a", out.stderr)
        out = subprocess.run([GRU_SERVE, "--models-dir", tiny_models(), "--port", "0", "--api-key-file",
                              self.path + ".missing"], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("No such file", out.stderr)


if __name__ == "__main__":
    main()
