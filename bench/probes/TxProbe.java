import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.*;

/**
 * Probe behind docs/performance.md (decision latency): the aggregator's closing transaction done by Kafka's own
 * Java client on the same broker, as a floor for what the protocol and the broker cost here. Per transaction:
 * one 810 KB record + 105 records of 300 B over three topics, sendOffsetsToTransaction, commit, then the time
 * until a read_committed consumer (polling in another thread) has the 810 KB record.
 *
 *   java -cp ".cache/kafka-3.9.1/libs/*" bench/probes/TxProbe.java 127.0.0.1:PORT [versionBytes, default 810000]
 */
public class TxProbe {
  public static void main(String[] args) throws Exception {
    String brokers = args[0];
    int versionBytes = args.length > 1 ? Integer.parseInt(args[1]) : 810_000;
    String id = UUID.randomUUID().toString().substring(0, 6);
    List<String> topics = List.of("models", "audit", "control", "updates").stream().map(k -> "txjava-" + id + "." + k).toList();
    Properties ap = new Properties();
    ap.put("bootstrap.servers", brokers);
    try (Admin admin = Admin.create(ap)) {
      admin.createTopics(topics.stream().map(t -> new NewTopic(t, 1, (short) 1)).toList()).all().get();
    }
    Properties pp = new Properties();
    pp.put("bootstrap.servers", brokers);
    pp.put("transactional.id", "txjava-" + id);
    pp.put("max.request.size", "1048576");
    pp.put("linger.ms", "0");
    KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(pp, new ByteArraySerializer(), new ByteArraySerializer());
    p.initTransactions();
    Properties cp = new Properties();
    cp.put("bootstrap.servers", brokers);
    cp.put("group.id", "obs-" + id);
    cp.put("isolation.level", "read_committed");
    cp.put("auto.offset.reset", "earliest");
    cp.put("fetch.max.wait.ms", "500");
    cp.put("max.partition.fetch.bytes", String.valueOf(4 << 20));
    final long[] seenAt = {0};
    final int[] seen = {0};
    Thread obs = new Thread(() -> {
      try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
        c.subscribe(List.of(topics.get(0)));
        while (!Thread.currentThread().isInterrupted()) {
          for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(100))) {
            synchronized (seen) { seen[0]++; seenAt[0] = System.nanoTime(); seen.notifyAll(); }
          }
        }
      } catch (org.apache.kafka.common.errors.InterruptException e) { /* done */ }
    });
    obs.start();
    Thread.sleep(3000);
    Random rnd = new Random(1);
    byte[] version = new byte[versionBytes];
    rnd.nextBytes(version);
    byte[] small = new byte[300];
    rnd.nextBytes(small);
    List<Double> totals = new ArrayList<>();
    for (int i = 0; i < 28; i++) {
      Thread.sleep(300);
      long t0 = System.nanoTime();
      p.beginTransaction();
      p.send(new ProducerRecord<>(topics.get(0), "v".getBytes(), version));
      for (int k = 0; k < 105; k++) p.send(new ProducerRecord<>(topics.get(k < 100 ? 1 : 2), ("k" + k).getBytes(), small));
      p.sendOffsetsToTransaction(Map.of(new TopicPartition(topics.get(3), 0), new OffsetAndMetadata(i + 1)), new ConsumerGroupMetadata("agg-" + id));
      p.commitTransaction();
      long t1 = System.nanoTime();
      synchronized (seen) { while (seen[0] < i + 1) seen.wait(); }
      double total = (seenAt[0] - t0) / 1e6;
      if (i >= 3) totals.add(total);
      if (System.getenv("VERBOSE") != null) System.out.printf("total %.1f commit-returned %.1f%n", total, (t1 - t0) / 1e6);
    }
    obs.interrupt();
    obs.join();
    p.close();
    Collections.sort(totals);
    System.out.printf("java, %d B version: transaction + read_committed receipt, ms: p50 %.1f p90 %.1f max %.1f (n=%d)%n", versionBytes, totals.get(totals.size() / 2), totals.get((int) (totals.size() * 0.9)), totals.get(totals.size() - 1), totals.size());
    try (Admin admin = Admin.create(ap)) { admin.deleteTopics(topics).all().get(); }
  }
}
