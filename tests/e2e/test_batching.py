"""test_batching.py - 64 concurrent clients: every answer correct, and batching visible in
/metrics (mean batch size > 1) with the default settings (no batching delay)."""
import os
import random
import tempfile
import threading
import time
import unittest

import tiny_model
from harness import Server, assert_close, main, predict

CLIENTS = 64
PER_CLIENT = 12


class Batching(unittest.TestCase):
    def test_64_clients(self):
        # A model big enough (H=256, 2 layers) that a forward pass takes a while, so texts
        # arriving meanwhile wait for the next batch together.
        d = tiny_model.write(os.path.join(tempfile.mkdtemp(prefix="gru-e2e-"), "medium-en"), "word", hidden=256,
                             layers=2, seed=3)
        rng = random.Random(7)
        words = [w for w in tiny_model.WORDS if w.isalpha()]
        texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 30))) for _ in range(96)]
        want = {t: r for t, r in zip(texts, predict(d, texts, "summary"))}
        errors, answered = [], [0]
        lock = threading.Lock()
        with Server(model=[d]) as srv:
            before = srv.metrics()

            def client(k):
                c = srv.connection()
                try:
                    for i in range(PER_CLIENT):
                        t = texts[(k * PER_CLIENT + i) % len(texts)]
                        status, _, doc = srv.json("POST", "/v1/sentiment", {"text": t}, conn=c)
                        if status != 200:
                            raise AssertionError("status %d: %s" % (status, doc))
                        w = dict(want[t], model="medium-en")
                        assert_close(self, doc, w, repr(t[:20]))
                        with lock:
                            answered[0] += 1
                except Exception as e:  # noqa: BLE001 - reported below
                    with lock:
                        errors.append(e)
                finally:
                    c.close()

            threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            self.assertEqual(answered[0], CLIENTS * PER_CLIENT)
            m = srv.metrics()
            batches = m["gru_batch_size_count"] - before["gru_batch_size_count"]
            texts_run = m["gru_batch_size_sum"] - before["gru_batch_size_sum"]
            self.assertEqual(texts_run, CLIENTS * PER_CLIENT)
            mean = texts_run / batches
            print("\n%d texts in %d batches: mean batch size %.2f" % (texts_run, batches, mean))
            self.assertGreater(mean, 1.0)
            # Requests are counted when MHD reports them complete, just after the last byte is
            # sent: allow a moment.
            key = 'gru_requests_total{route="/v1/sentiment",status="200"}'
            for _ in range(100):
                if m[key] == CLIENTS * PER_CLIENT:
                    break
                time.sleep(0.01)
                m = srv.metrics()
            self.assertEqual(m[key], CLIENTS * PER_CLIENT)


if __name__ == "__main__":
    main()
