"""librdkafka's transactional producer (confluent-kafka) for examples/txn_bench.rs.

    txn_confluent.py BOOTSTRAP TOPIC COUNT SIZE TXN_SIZE    # TXN_SIZE 0: no transactions

Produces COUNT records of SIZE bytes to TOPIC (record i to partition i mod the
partition count), in transactions of TXN_SIZE records, with the settings
txn_bench uses for our producer: idempotent, acks=all, linger 5 ms, batches up
to 1 MiB, 32 MiB of buffer. Prints one RESULT line as txn_bench does.
Run by txn_bench when TXN_BENCH_PEER names this script's command line.
"""
import os
import resource
import sys
import time

import confluent_kafka as ck


def main():
    if len(sys.argv) != 6:
        sys.stderr.write(__doc__)
        sys.exit(2)
    bootstrap, topic = sys.argv[1], sys.argv[2]
    count, size, txn = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    failures = [0]

    def on_delivery(err, _msg):
        if err is not None:
            failures[0] += 1
            if failures[0] <= 5:
                sys.stderr.write("delivery failed: %s\n" % (err,))

    conf = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.size": 1 << 20,
        "message.max.bytes": 2 << 20,
        "queue.buffering.max.kbytes": 32768,
        "delivery.report.only.error": True,
        "on_delivery": on_delivery,
        "error_cb": lambda e: sys.stderr.write("librdkafka error: %s\n" % (e,)),
    }
    if txn:
        conf["transactional.id"] = "%s-writer-%d" % (topic, os.getpid())
    p = ck.Producer(conf)
    parts = 0
    for _ in range(100):
        t = p.list_topics(topic, timeout=10).topics.get(topic)
        if t is not None and t.error is None and t.partitions:
            parts = len(t.partitions)
            break
        time.sleep(0.1)
    if not parts:
        sys.stderr.write("topic %s not found\n" % topic)
        sys.exit(1)
    if txn:
        p.init_transactions(60)
    value = b"x" * size
    send, poll = p.produce, p.poll
    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    cpu_start = cpu()
    start = time.perf_counter()
    i = 0
    while i < count:
        n = min(txn or count, count - i)
        if txn:
            p.begin_transaction()
        for j in range(i, i + n):
            while True:
                try:
                    send(topic, value, partition=j % parts)
                    break
                except BufferError:
                    poll(0.001)
            if not j & 1023:
                poll(0)
        if txn:
            p.commit_transaction(120)
        i += n
    left = p.flush(120)
    secs = time.perf_counter() - start
    cpu_s = cpu() - cpu_start
    mode = "transactions-of-%d" % txn if txn else "no-transactions"
    print("RESULT client=confluent-kafka-%s mode=%s records=%d seconds=%.2f records_per_s=%.0f"
          " mb_per_s=%.1f errors=%d cpu_s=%.2f"
          % (ck.libversion()[0], mode, count, secs, count / secs, count * size / secs / 1e6,
             failures[0] + left, cpu_s))


if __name__ == "__main__":
    main()
