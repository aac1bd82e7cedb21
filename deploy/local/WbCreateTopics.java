// WbCreateTopics.java — create several Kafka topics in one JVM start.
//
// deploy/local/services runs this with Java's single-file source launcher
// (java -cp 'libs/*' WbCreateTopics.java ...), which needs only the JRE
// (the jdk.compiler module ships in Debian's openjdk-17-jre-headless image).
// TopicCommand takes one topic per JVM, about 1 s each on this machine; this
// does all of them in one go. Topics that already exist are left as they are.
//
// usage: WbCreateTopics BOOTSTRAP NAME:PARTITIONS [NAME:PARTITIONS ...]
// exit:  0 all exist now, 1 a creation failed, 2 usage error

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.errors.TopicExistsException;

public class WbCreateTopics {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: WbCreateTopics BOOTSTRAP NAME:PARTITIONS...");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "60000");
        List<NewTopic> topics = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            int colon = args[i].lastIndexOf(':');
            if (colon <= 0) {
                System.err.println("WbCreateTopics: want NAME:PARTITIONS, got " + args[i]);
                System.exit(2);
            }
            int partitions = Integer.parseInt(args[i].substring(colon + 1));
            // Never compacted: the log's order is not version order, and
            // replay needs every event (the flusher refuses a compacted topic).
            topics.add(new NewTopic(args[i].substring(0, colon), partitions, (short) 1)
                           .configs(Map.of("cleanup.policy", "delete")));
        }
        int rc = 0;
        try (Admin admin = Admin.create(props)) {
            for (Map.Entry<String, KafkaFuture<Void>> e :
                 admin.createTopics(topics).values().entrySet()) {
                try {
                    e.getValue().get();
                    System.out.println("Created topic " + e.getKey() + ".");
                } catch (ExecutionException x) {
                    if (!(x.getCause() instanceof TopicExistsException)) {
                        System.err.println("WbCreateTopics: " + e.getKey() + ": " + x.getCause());
                        rc = 1;
                    }
                }
            }
        }
        System.exit(rc);
    }
}
