/* roomgraph C API. All functions return a roomgraph_result; outputs are written only on success and
 * *out_len always receives the output length (the size needed on ROOMGRAPH_BUFFER_TOO_SMALL).
 * Inputs are byte buffers with explicit lengths (room version as ASCII, e.g. "11"; PDU as JSON). */
#ifndef ROOMGRAPH_H
#define ROOMGRAPH_H
#include <stddef.h>
#include <stdint.h>

typedef enum roomgraph_result {
    ROOMGRAPH_OK = 0,
    ROOMGRAPH_NULL_ARGUMENT = 1,
    ROOMGRAPH_UNKNOWN_ROOM_VERSION = 2,
    ROOMGRAPH_INVALID_PDU = 3,
    ROOMGRAPH_BUFFER_TOO_SMALL = 4,
    ROOMGRAPH_INTERNAL = 255
} roomgraph_result;

roomgraph_result roomgraph_event_id(const uint8_t *version, size_t version_len, const uint8_t *pdu, size_t pdu_len,
                                    uint8_t *out, size_t out_cap, size_t *out_len);
roomgraph_result roomgraph_content_hash(const uint8_t *version, size_t version_len, const uint8_t *pdu,
                                        size_t pdu_len, uint8_t *out, size_t out_cap, size_t *out_len);
roomgraph_result roomgraph_redact(const uint8_t *version, size_t version_len, const uint8_t *pdu, size_t pdu_len,
                                  uint8_t *out, size_t out_cap, size_t *out_len);

#endif
