/* wb_producer.h — the client's Kafka side: idempotent producers (a batching one, and one without
 * linger for waited sends), their bounded queue, delivery waiters. */
#ifndef WB_PRODUCER_H
#define WB_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include "wb_config.h"
#include "wb_event.h"
#include "wb_log.h"

typedef struct wb_producer_s wb_producer_t;

/* Collects the delivery reports of the messages of ONE ack: log call (one
 * or a batch). Created by the caller, handed to wb_producer_send with a
 * slot index per message; the poll thread records each result. Reference
 * counted: a caller that gives up waiting releases it and the last
 * delivery report frees it. */
typedef struct wb_waiter_s wb_waiter_t;

/* Creates the producer: librdkafka conf from the config (kafka.properties
 * included), then enable.idempotence + acks=all, message.timeout.ms =
 * producer.kafka_timeout_ms (so librdkafka gives up when ack: log does),
 * queue.buffering.max.messages = producer.queue_max plus room for refresh
 * requests; and starts the poll thread that serves delivery reports.
 * When linger.ms is above 0 a second librdkafka instance with linger.ms 0
 * (its own connections and poll thread) carries the sends a caller waits
 * for one at a time (wb_producer_send with a waiter of one slot), so an
 * ack: log put does not wait for the batching delay — unless an earlier
 * event of the same key (hash) is still queued in the batching instance:
 * then it follows that one, so sequential writes of a key stay in order in
 * the log (see wb_producer.c; versions make the order harmless anyway).
 * A fatal error of the idempotent producer (it would refuse every message
 * from then on) is logged at ERROR and the poll thread replaces the
 * librdkafka instance within about a second; messages the old one still
 * held fail (their entries stay dirty for the sweeper), later sends go
 * through the new one.
 * The poll thread runs inside log scope log (NULL: the process-wide sink),
 * and librdkafka's own log lines are served there (WB_KAFKA_F_LOG_QUEUE).
 * conf and log are borrowed and must outlive the producer. Returns WB_OK,
 * WB_ERR_CONFIG (bad kafka property), WB_ERR_KAFKA or WB_ERR_NOMEM. */
wb_err_t wb_producer_new(const wb_config_t *conf, wb_log_scope_t *log, wb_producer_t **out,
                         char *errstr, size_t errstr_size);

/* Waits up to timeout_ms for queued messages, stops the poll thread,
 * drops what is left (those entries stay dirty: the sweeper covers them)
 * and frees everything. No call may be in progress. NULL is fine. */
void wb_producer_destroy(wb_producer_t *p, int timeout_ms);

/* Reserves up to n slots of the bounded change-event queue and returns how
 * many it got (0 = full). A put reserves BEFORE writing Redis, so a full
 * queue rejects the write instead of leaving it unsent. Thread-safe. */
size_t wb_producer_reserve(wb_producer_t *p, size_t n);

/* Gives back n reserved slots that will not be sent. Thread-safe. */
void wb_producer_unreserve(wb_producer_t *p, size_t n);

/* 1 if a change event with a key of keylen bytes and a value of vlen
 * bytes fits in one Kafka message (librdkafka's message.max.bytes, or the
 * changes topic's max.message.bytes when it is lower and could be read at
 * open, with room for the headers). A put that would not fit is refused before Redis
 * is written: the event could never be delivered, not even by the sweeper. */
int wb_producer_fits(const wb_producer_t *p, size_t keylen, size_t vlen);

/* Change events reserved and not yet reported delivered or failed. */
uint64_t wb_producer_depth(wb_producer_t *p);

/* Change events Kafka refused or failed to deliver (since creation). */
uint64_t wb_producer_errors(wb_producer_t *p);

/* Sends change event ev to kafka.topics.changes, consuming one reserved
 * slot (released when its delivery report arrives, or now on failure).
 * w == NULL: fire-and-forget (ack: cache). Otherwise the report lands in
 * slot `slot` of w; a waiter of one slot sends without linger. Returns WB_OK if librdkafka queued
 * it, else the translated librdkafka error (errstr set). Thread-safe. */
wb_err_t wb_producer_send(wb_producer_t *p, const wb_event_t *ev, wb_waiter_t *w, size_t slot,
                          char *errstr, size_t errstr_size);

/* Sends a refresh request (ev->kind WB_EVENT_REFRESH) to
 * kafka.topics.refresh without waiting and without a reserved slot.
 * Returns WB_OK if queued. Thread-safe. */
wb_err_t wb_producer_send_refresh(wb_producer_t *p, const wb_event_t *ev);

/* Waits up to timeout_ms until librdkafka's queue is empty. WB_OK or
 * WB_ERR_TIMEOUT. Thread-safe. */
wb_err_t wb_producer_flush(wb_producer_t *p, int timeout_ms);

/* Tests only: makes every librdkafka instance raise a fabricated fatal error
 * (rd_kafka_test_fatal_error), as the idempotent producer does when it
 * loses its guarantees. WB_OK, or WB_ERR_KAFKA if one is already raised. */
wb_err_t wb_producer_test_fatal(wb_producer_t *p, const char *reason);

/* A waiter for n messages (all slots start as WB_ERR_TIMEOUT: "no report
 * yet"). NULL when out of memory. */
wb_waiter_t *wb_waiter_new(size_t n);

/* Blocks until every message sent with w has its delivery report or
 * timeout_ms passed. WB_OK (all reported; look at each result) or
 * WB_ERR_TIMEOUT. */
wb_err_t wb_waiter_wait(wb_waiter_t *w, int timeout_ms);

/* Result of slot i: WB_OK delivered, WB_ERR_TIMEOUT no report yet, else
 * the delivery error. */
wb_err_t wb_waiter_result(wb_waiter_t *w, size_t i);

/* The caller's release; the memory goes with the last reference. */
void wb_waiter_release(wb_waiter_t *w);

#endif /* WB_PRODUCER_H */
