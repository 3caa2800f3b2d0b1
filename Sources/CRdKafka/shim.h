// The only C in Conveyor: librdkafka's headers plus `static inline` helpers for what Swift cannot call
// directly (variadic functions, macros).
#ifndef CONVEYOR_CRDKAFKA_SHIM_H
#define CONVEYOR_CRDKAFKA_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

// MARK: - Macros as functions

/// `RD_KAFKA_PARTITION_UA`: let the partitioner choose.
static inline int32_t conveyor_partition_unassigned(void) { return RD_KAFKA_PARTITION_UA; }

/// `RD_KAFKA_OFFSET_INVALID`: no offset (nothing committed or stored).
static inline int64_t conveyor_offset_invalid(void) { return RD_KAFKA_OFFSET_INVALID; }

// MARK: - Producing

/// Wraps the variadic `rd_kafka_producev`. `has_key == 0` produces a null key and `has_value == 0` a null value;
/// otherwise an empty key or value is produced as empty even when its pointer is NULL.
/// On success librdkafka owns `headers` (which may be NULL); on failure the caller still owns them.
/// The payloads are copied (`RD_KAFKA_MSG_F_COPY`), so the caller's buffers may be released on return.
static inline rd_kafka_resp_err_t conveyor_produce(rd_kafka_t *rk, const char *topic, int32_t partition,
                                                   const void *key, size_t key_len, int has_key,
                                                   const void *value, size_t value_len, int has_value,
                                                   rd_kafka_headers_t *headers, void *opaque) {
    static const char empty[1] = {0};
    key = has_key ? (key != NULL ? key : empty) : NULL;
    value = has_value ? (value != NULL ? value : empty) : NULL;
    return rd_kafka_producev(rk,
                             RD_KAFKA_V_TOPIC(topic),
                             RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_KEY(key, key_len),
                             RD_KAFKA_V_VALUE((void *)value, value_len),
                             RD_KAFKA_V_HEADERS(headers),
                             RD_KAFKA_V_OPAQUE(opaque),
                             RD_KAFKA_V_END);
}

// MARK: - Benchmark baseline

/// The raw librdkafka consume loop the benchmark compares Conveyor's consumer against: drain the consumer queue
/// with `rd_kafka_consumer_poll` (without waiting while records are queued, waiting only when it is empty),
/// touch each payload's length, destroy the message. Stops after `target` records
/// or when no record arrived for `idle_timeout_ms`. Returns the number of records consumed and adds their
/// payload bytes to `*bytes`.
static inline int64_t conveyor_baseline_consume(rd_kafka_t *rk, int64_t target, int idle_timeout_ms,
                                                int64_t *bytes) {
    int64_t count = 0;
    while (count < target) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 0);
        if (msg == NULL) {
            msg = rd_kafka_consumer_poll(rk, idle_timeout_ms);
        }
        if (msg == NULL) {
            break;
        }
        if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            count += 1;
            *bytes += (int64_t)msg->len + (int64_t)msg->key_len;
        }
        rd_kafka_message_destroy(msg);
    }
    return count;
}

#endif
