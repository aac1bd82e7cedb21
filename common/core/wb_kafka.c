/* wb_kafka.c — librdkafka setup from the config: conf, producer, consumer, topics, errors. */
#include "wb_kafka.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "wb_log.h"
#include "wb_util.h"

/* librdkafka's own messages quote the value ("Invalid value \"x\" for
 * configuration property \"y\""), so for these names only ours is used. */
static int name_is_secret(const char *name)
{
    static const char *const marks[] = {"password", "secret", "key", "oauthbearer.config", "jaas"};
    size_t i;

    for (i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
        if (strcasestr(name, marks[i])) return 1;
    return 0;
}

/* Log callbacks run on librdkafka's internal threads (or the polling
 * thread with log.queue): they touch nothing but stderr (in log.format
 * json through wb_log, whose process-wide path the daemons leave on stderr). */
static void log_quiet(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
}

static void log_stderr(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    static const char *const names[] = {"EMERG", "ALERT", "CRIT", "ERROR", "WARN"};

    if (level < 0 || level > 4) return;
    if (wb_log_get_format() == WB_LOG_FORMAT_JSON) { /* a line like every other: an object */
        wb_log_field_t fields[] = {{"client", rk ? rd_kafka_name(rk) : "-"},
                                   {"facility", fac ? fac : "-"}};
        wb_log_write_fields(level <= 3 ? WB_LOG_ERROR : WB_LOG_WARN, fields, 2, "kafka: %s",
                            buf ? buf : "");
        return;
    }
    fprintf(stderr, "%s kafka %s [%s]: %s\n", names[level], rk ? rd_kafka_name(rk) : "-",
            fac ? fac : "-", buf ? buf : "");
}

/* WB_KAFKA_F_LOG_QUEUE: runs on the thread that polls, inside its log
 * scope. */
static void log_wb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    wb_log_level_t wl = level <= 3   ? WB_LOG_ERROR
                        : level == 4 ? WB_LOG_WARN
                        : level == 5 ? WB_LOG_INFO
                                     : WB_LOG_DEBUG;

    WB_LOG_AT(wl, "kafka %s [%s]: %s", rk ? rd_kafka_name(rk) : "-", fac ? fac : "-",
              buf ? buf : "");
}

/* Sets one property; the message names the property and, unless the name
 * looks secret, carries librdkafka's explanation. */
static wb_err_t conf_set(rd_kafka_conf_t *kconf, const char *origin, const char *name,
                         const char *value, char *errstr, size_t errstr_size)
{
    char why[512];

    why[0] = '\0';
    if (rd_kafka_conf_set(kconf, name, value, why, sizeof(why)) == RD_KAFKA_CONF_OK) return WB_OK;
    if (name_is_secret(name))
        wb_set_err(errstr, errstr_size, "%s: invalid kafka property \"%s\" (value not shown)",
                   origin, name);
    else
        wb_set_err(errstr, errstr_size, "%s: invalid kafka property \"%s\": %s", origin, name, why);
    return WB_ERR_CONFIG;
}

wb_err_t wb_kafka_conf_new(const wb_config_t *conf, const char *client_role, unsigned flags,
                           rd_kafka_conf_t **out, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *kconf = NULL;
    char client_id[128];
    wb_err_t err;
    size_t i;

    if (out) *out = NULL;
    if (!conf || !out) {
        wb_set_err(errstr, errstr_size, "kafka conf: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    if (!conf->kafka.brokers || !conf->kafka.brokers[0]) {
        wb_set_err(errstr, errstr_size, "kafka.brokers: must be set");
        return WB_ERR_CONFIG;
    }
    kconf = rd_kafka_conf_new();
    if (!kconf) {
        wb_set_err(errstr, errstr_size, "kafka conf: out of memory");
        return WB_ERR_NOMEM;
    }
    if (flags & WB_KAFKA_F_LOG_QUEUE)
        rd_kafka_conf_set_log_cb(kconf, log_wb);
    else
        rd_kafka_conf_set_log_cb(kconf, (flags & WB_KAFKA_F_LOG_STDERR) ? log_stderr : log_quiet);
    err = conf_set(kconf, "kafka.brokers", "bootstrap.servers", conf->kafka.brokers, errstr,
                   errstr_size);
    if (err != WB_OK) goto fail;
    snprintf(client_id, sizeof(client_id), "wbcache%s%s", client_role ? "-" : "",
             client_role ? client_role : "");
    err = conf_set(kconf, "client.id", "client.id", client_id, errstr, errstr_size);
    if (err != WB_OK) goto fail;
    if (flags & WB_KAFKA_F_SMALL_PREFETCH) {
        err = conf_set(kconf, "kafka", "queued.max.messages.kbytes", "4096", errstr, errstr_size);
        if (err == WB_OK)
            err = conf_set(kconf, "kafka", "max.partition.fetch.bytes", "262144", errstr,
                           errstr_size);
        if (err != WB_OK) goto fail;
    }
    for (i = 0; i < conf->kafka.nprops; i++) {
        const wb_kv_t *kv = &conf->kafka.props[i];

        if (!kv->name || !kv->value) {
            wb_set_err(errstr, errstr_size, "kafka.properties: entry %zu has no name or value", i);
            err = WB_ERR_CONFIG;
            goto fail;
        }
        err = conf_set(kconf, "kafka.properties", kv->name, kv->value, errstr, errstr_size);
        if (err != WB_OK) goto fail;
    }
    /* After the properties: a log line on one of librdkafka's own threads
     * would miss the caller's log scope. */
    if ((flags & WB_KAFKA_F_LOG_QUEUE) &&
        (err = conf_set(kconf, "kafka", "log.queue", "true", errstr, errstr_size)) != WB_OK)
        goto fail;
    *out = kconf;
    return WB_OK;

fail:
    rd_kafka_conf_destroy(kconf);
    return err;
}

/* Settings the code depends on, applied over kafka.properties; a failure
 * here is a librdkafka without the feature, reported as WB_ERR_KAFKA. */
static wb_err_t force(rd_kafka_conf_t *kconf, const char *name, const char *value, char *errstr,
                      size_t errstr_size)
{
    char why[512];

    if (rd_kafka_conf_set(kconf, name, value, why, sizeof(why)) == RD_KAFKA_CONF_OK) return WB_OK;
    wb_set_err(errstr, errstr_size, "kafka: cannot set %s=%s: %s", name, value, why);
    return WB_ERR_KAFKA;
}

wb_err_t wb_kafka_producer_new(rd_kafka_conf_t *kconf, int idempotent_acks_all, rd_kafka_t **out,
                               char *errstr, size_t errstr_size)
{
    char why[512], logq[8];
    size_t logq_size = sizeof(logq);
    rd_kafka_t *rk;
    wb_err_t err;
    int queued_log;

    if (out) *out = NULL;
    if (!kconf || !out) {
        wb_set_err(errstr, errstr_size, "kafka producer: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    queued_log = rd_kafka_conf_get(kconf, "log.queue", logq, &logq_size) == RD_KAFKA_CONF_OK &&
                 !strcmp(logq, "true");
    if (idempotent_acks_all) {
        if ((err = force(kconf, "enable.idempotence", "true", errstr, errstr_size)) != WB_OK ||
            (err = force(kconf, "acks", "all", errstr, errstr_size)) != WB_OK)
            return err;
    }
    why[0] = '\0';
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, kconf, why, sizeof(why));
    if (!rk) {
        wb_set_err(errstr, errstr_size, "kafka producer: %s", why);
        return WB_ERR_KAFKA;
    }
    /* Lines logged so far waited in a temporary queue; from now on they
     * are served with the main queue, by rd_kafka_poll. */
    if (queued_log) rd_kafka_set_log_queue(rk, NULL);
    *out = rk;
    return WB_OK;
}

wb_err_t wb_kafka_consumer_new(rd_kafka_conf_t *kconf, const char *group_id, rd_kafka_t **out,
                               char *errstr, size_t errstr_size)
{
    static const char *const forced[][2] = {
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"partition.assignment.strategy", "cooperative-sticky"},
    };
    char why[512];
    rd_kafka_t *rk;
    wb_err_t err;
    size_t i;

    if (out) *out = NULL;
    if (!kconf || !out || !group_id || !group_id[0]) {
        wb_set_err(errstr, errstr_size, "kafka consumer: invalid arguments (group id required)");
        return WB_ERR_INVALID_ARG;
    }
    if ((err = force(kconf, "group.id", group_id, errstr, errstr_size)) != WB_OK) return err;
    for (i = 0; i < sizeof(forced) / sizeof(forced[0]); i++)
        if ((err = force(kconf, forced[i][0], forced[i][1], errstr, errstr_size)) != WB_OK)
            return err;
    why[0] = '\0';
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, kconf, why, sizeof(why));
    if (!rk) {
        wb_set_err(errstr, errstr_size, "kafka consumer: %s", why);
        return WB_ERR_KAFKA;
    }
    rd_kafka_poll_set_consumer(rk);
    *out = rk;
    return WB_OK;
}

wb_err_t wb_kafka_err(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return WB_OK;
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        return WB_ERR_TIMEOUT;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return WB_ERR_QUEUE_FULL;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        return WB_ERR_TOO_LARGE;
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return WB_ERR_INVALID_ARG;
    case RD_KAFKA_RESP_ERR__DESTROY:
        return WB_ERR_CLOSED;
    default:
        return WB_ERR_KAFKA;
    }
}

/* Waits for the one result event of an admin request on queue. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *queue, int timeout_ms)
{
    /* The broker-side operation timeout is timeout_ms; allow a little more
     * for the reply to travel before giving up locally. */
    return rd_kafka_queue_poll(queue, timeout_ms + 1000);
}

static wb_err_t topic_result(const char *what, const char *name, rd_kafka_event_t *ev,
                             const rd_kafka_topic_result_t **res, size_t nres,
                             rd_kafka_resp_err_t ok_err, char *errstr, size_t errstr_size)
{
    rd_kafka_resp_err_t e;

    if (!ev) {
        wb_set_err(errstr, errstr_size, "kafka %s %s: timed out", what, name);
        return WB_ERR_TIMEOUT;
    }
    e = rd_kafka_event_error(ev);
    if (e) {
        wb_set_err(errstr, errstr_size, "kafka %s %s: %s", what, name,
                   rd_kafka_event_error_string(ev));
        return wb_kafka_err(e) == WB_ERR_TIMEOUT ? WB_ERR_TIMEOUT : WB_ERR_KAFKA;
    }
    if (!res || nres != 1) {
        wb_set_err(errstr, errstr_size, "kafka %s %s: no result", what, name);
        return WB_ERR_KAFKA;
    }
    e = rd_kafka_topic_result_error(res[0]);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == ok_err) return WB_OK;
    wb_set_err(errstr, errstr_size, "kafka %s %s: %s", what, name,
               rd_kafka_topic_result_error_string(res[0])
                   ? rd_kafka_topic_result_error_string(res[0])
                   : rd_kafka_err2str(e));
    return wb_kafka_err(e) == WB_ERR_TIMEOUT ? WB_ERR_TIMEOUT : WB_ERR_KAFKA;
}

static rd_kafka_AdminOptions_t *admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t op,
                                              int timeout_ms)
{
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, op);
    char why[256];

    if (!opts) return NULL;
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, why, sizeof(why));
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, why, sizeof(why));
    return opts;
}

wb_err_t wb_kafka_create_topic(rd_kafka_t *rk, const char *name, int partitions, int timeout_ms,
                               char *errstr, size_t errstr_size)
{
    rd_kafka_NewTopic_t *topic = NULL;
    rd_kafka_AdminOptions_t *opts = NULL;
    rd_kafka_queue_t *queue = NULL;
    rd_kafka_event_t *ev = NULL;
    const rd_kafka_topic_result_t **res = NULL;
    size_t nres = 0;
    char why[256];
    wb_err_t err;

    if (!rk || !name || !name[0] || partitions < 1 || timeout_ms < 1) {
        wb_set_err(errstr, errstr_size, "kafka create topic: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    topic = rd_kafka_NewTopic_new(name, partitions, -1, why, sizeof(why));
    if (!topic) {
        wb_set_err(errstr, errstr_size, "kafka create topic %s: %s", name, why);
        return WB_ERR_INVALID_ARG;
    }
    opts = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout_ms);
    queue = rd_kafka_queue_new(rk);
    if (!opts || !queue) {
        wb_set_err(errstr, errstr_size, "kafka create topic %s: out of memory", name);
        err = WB_ERR_NOMEM;
        goto done;
    }
    rd_kafka_CreateTopics(rk, &topic, 1, opts, queue);
    ev = admin_wait(queue, timeout_ms);
    if (ev && rd_kafka_event_CreateTopics_result(ev))
        res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &nres);
    err = topic_result("create topic", name, ev, res, nres, RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS,
                       errstr, errstr_size);

done:
    if (ev) rd_kafka_event_destroy(ev);
    if (queue) rd_kafka_queue_destroy(queue);
    if (opts) rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_NewTopic_destroy(topic);
    return err;
}

wb_err_t wb_kafka_topic_max_bytes(rd_kafka_t *rk, const char *name, int timeout_ms, int64_t *out,
                                  char *errstr, size_t errstr_size)
{
    rd_kafka_ConfigResource_t *res = NULL;
    rd_kafka_AdminOptions_t *opts = NULL;
    rd_kafka_queue_t *queue = NULL;
    rd_kafka_event_t *ev = NULL;
    wb_err_t err = WB_ERR_KAFKA;

    if (!rk || !name || !name[0] || timeout_ms < 1 || !out) {
        wb_set_err(errstr, errstr_size, "kafka describe topic: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name);
    opts = admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, timeout_ms);
    queue = rd_kafka_queue_new(rk);
    if (!res || !opts || !queue) {
        wb_set_err(errstr, errstr_size, "kafka describe topic %s: out of memory", name);
        err = WB_ERR_NOMEM;
        goto done;
    }
    rd_kafka_DescribeConfigs(rk, &res, 1, opts, queue);
    ev = admin_wait(queue, timeout_ms);
    if (!ev) {
        wb_set_err(errstr, errstr_size, "kafka describe topic %s: timed out", name);
        err = WB_ERR_TIMEOUT;
        goto done;
    }
    if (rd_kafka_event_error(ev)) {
        wb_set_err(errstr, errstr_size, "kafka describe topic %s: %s", name,
                   rd_kafka_event_error_string(ev));
        goto done;
    }
    {
        const rd_kafka_DescribeConfigs_result_t *r = rd_kafka_event_DescribeConfigs_result(ev);
        size_t nr = 0, nc = 0;
        const rd_kafka_ConfigResource_t **rr =
            r ? rd_kafka_DescribeConfigs_result_resources(r, &nr) : NULL;
        const rd_kafka_ConfigEntry_t **ce = NULL;

        if (nr != 1 || rd_kafka_ConfigResource_error(rr[0])) {
            wb_set_err(errstr, errstr_size, "kafka describe topic %s: %s", name,
                       nr == 1 ? rd_kafka_ConfigResource_error_string(rr[0]) : "no result");
            goto done;
        }
        ce = rd_kafka_ConfigResource_configs(rr[0], &nc);
        for (size_t i = 0; i < nc; i++) {
            const char *v = rd_kafka_ConfigEntry_value(ce[i]);
            int64_t n = 0;
            if (strcmp(rd_kafka_ConfigEntry_name(ce[i]), "max.message.bytes") != 0 || !v ||
                wb_parse_i64(v, strlen(v), &n) != 0 || n <= 0)
                continue;
            *out = n;
            err = WB_OK;
            goto done;
        }
        wb_set_err(errstr, errstr_size, "kafka describe topic %s: no max.message.bytes", name);
    }

done:
    if (ev) rd_kafka_event_destroy(ev);
    if (queue) rd_kafka_queue_destroy(queue);
    if (opts) rd_kafka_AdminOptions_destroy(opts);
    if (res) rd_kafka_ConfigResource_destroy(res);
    return err;
}

wb_err_t wb_kafka_delete_topic(rd_kafka_t *rk, const char *name, int timeout_ms, char *errstr,
                               size_t errstr_size)
{
    rd_kafka_DeleteTopic_t *topic = NULL;
    rd_kafka_AdminOptions_t *opts = NULL;
    rd_kafka_queue_t *queue = NULL;
    rd_kafka_event_t *ev = NULL;
    const rd_kafka_topic_result_t **res = NULL;
    size_t nres = 0;
    wb_err_t err;

    if (!rk || !name || !name[0] || timeout_ms < 1) {
        wb_set_err(errstr, errstr_size, "kafka delete topic: invalid arguments");
        return WB_ERR_INVALID_ARG;
    }
    topic = rd_kafka_DeleteTopic_new(name);
    opts = admin_options(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS, timeout_ms);
    queue = rd_kafka_queue_new(rk);
    if (!topic || !opts || !queue) {
        wb_set_err(errstr, errstr_size, "kafka delete topic %s: out of memory", name);
        err = WB_ERR_NOMEM;
        goto done;
    }
    rd_kafka_DeleteTopics(rk, &topic, 1, opts, queue);
    ev = admin_wait(queue, timeout_ms);
    if (ev && rd_kafka_event_DeleteTopics_result(ev))
        res = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &nres);
    err = topic_result("delete topic", name, ev, res, nres, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                       errstr, errstr_size);

done:
    if (ev) rd_kafka_event_destroy(ev);
    if (queue) rd_kafka_queue_destroy(queue);
    if (opts) rd_kafka_AdminOptions_destroy(opts);
    if (topic) rd_kafka_DeleteTopic_destroy(topic);
    return err;
}
