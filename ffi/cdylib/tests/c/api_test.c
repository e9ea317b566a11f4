/* Every entry point of the roomgraph C API, from C: answers, bad input, NULL arguments, small
 * buffers, and that nothing is written on failure. Run by ffi/tests/c_api.rs (under Valgrind when it
 * is installed) with the paths of its inputs:
 *
 *   api_test SAMPLE_NDJSON SAMPLE_IDS RESOLVE_DOC RESOLVE_BEGIN_DOC RESOLVE_SUPPLY_DOC AUTH_DOC STORE_DIR
 *
 * Prints one line per failed check and exits 1 if any failed. */
#include "roomgraph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond, what)                                                        \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            failures++;                                                          \
            fprintf(stderr, "FAIL %s:%d: %s (%s)\n", __FILE__, __LINE__, what, #cond); \
        }                                                                        \
    } while (0)

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    buf[size] = '\0';
    fclose(f);
    *len = (size_t)size;
    return buf;
}

static const uint8_t *u8(const char *s) { return (const uint8_t *)s; }

/* The thread's last error detail, as a NUL-terminated string in a static buffer. */
static const char *last_error(void) {
    static char buf[4096];
    size_t len = 0;
    if (roomgraph_last_error((uint8_t *)buf, sizeof buf - 1, &len) != ROOMGRAPH_OK) return "?";
    buf[len] = '\0';
    return buf;
}

static int contains(const roomgraph_buffer *b, const char *needle) {
    if (b->ptr == NULL) return 0;
    char *copy = malloc(b->len + 1);
    memcpy(copy, b->ptr, b->len);
    copy[b->len] = '\0';
    int found = strstr(copy, needle) != NULL;
    free(copy);
    return found;
}

static void test_messages(void) {
    uint8_t buf[128];
    size_t len = 0;
    CHECK(roomgraph_error_message(ROOMGRAPH_STORE_ERROR, buf, sizeof buf, &len) == ROOMGRAPH_OK, "message");
    CHECK(len > 0 && memcmp(buf, "the store failed", len) == 0, "message text");
    memset(buf, 0, sizeof buf);
    CHECK(roomgraph_error_message(ROOMGRAPH_PANIC, buf, 3, &len) == ROOMGRAPH_BUFFER_TOO_SMALL, "small buffer");
    CHECK(len > 3 && buf[0] == 0, "size needed reported, nothing written");
    CHECK(roomgraph_error_message(ROOMGRAPH_OK, buf, sizeof buf, NULL) == ROOMGRAPH_NULL_ARGUMENT, "null out_len");
    CHECK(roomgraph_error_message(ROOMGRAPH_OK, NULL, 0, &len) == ROOMGRAPH_BUFFER_TOO_SMALL && len == 2,
          "null buffer of capacity 0 asks for the size");
}

static void test_pdu(const char *line, size_t line_len, const char *id) {
    uint8_t out[4096];
    size_t len = 0;
    CHECK(roomgraph_event_id(u8("11"), 2, u8(line), line_len, out, sizeof out, &len) == ROOMGRAPH_OK, "event id");
    CHECK(len == strlen(id) && memcmp(out, id, len) == 0, "event id matches the sample's");
    uint8_t small[8] = {0};
    CHECK(roomgraph_event_id(u8("11"), 2, u8(line), line_len, small, sizeof small, &len) ==
              ROOMGRAPH_BUFFER_TOO_SMALL, "event id into a small buffer");
    CHECK(len == strlen(id) && small[0] == 0, "size needed, nothing written");
    CHECK(roomgraph_event_id(NULL, 2, u8(line), line_len, out, sizeof out, &len) == ROOMGRAPH_NULL_ARGUMENT,
          "null version");
    CHECK(roomgraph_event_id(u8("99"), 2, u8(line), line_len, out, sizeof out, &len) ==
              ROOMGRAPH_UNKNOWN_ROOM_VERSION, "unknown version");
    CHECK(roomgraph_event_id(u8("11"), 2, u8("{"), 1, out, sizeof out, &len) == ROOMGRAPH_INVALID_PDU, "bad pdu");
    CHECK(strstr(last_error(), "JSON") != NULL, "the detail says what is wrong");
    CHECK(roomgraph_content_hash(u8("11"), 2, u8(line), line_len, out, sizeof out, &len) == ROOMGRAPH_OK &&
              len == 43, "content hash");
    CHECK(roomgraph_redact(u8("11"), 2, u8(line), line_len, out, sizeof out, &len) == ROOMGRAPH_OK && out[0] == '{',
          "redact");
    CHECK(roomgraph_redact(u8("11"), 2, u8(line), line_len, out, sizeof out, NULL) == ROOMGRAPH_NULL_ARGUMENT,
          "redact: null out_len");
}

static void test_documents(const char *resolve_doc, size_t resolve_len, const char *auth_doc, size_t auth_len,
                           roomgraph_buffer *resolved) {
    CHECK(roomgraph_resolve_json(u8(resolve_doc), resolve_len, resolved) == ROOMGRAPH_OK, "resolve");
    CHECK(contains(resolved, "\"m.room.create\""), "resolved state has the create event");
    roomgraph_buffer bad = {NULL, 0};
    CHECK(roomgraph_resolve_json(u8("{}"), 2, &bad) == ROOMGRAPH_INVALID_REQUEST, "resolve: bad document");
    CHECK(bad.ptr == NULL && bad.len == 0, "nothing allocated on failure");
    CHECK(strlen(last_error()) > 0, "detail of the refused document");
    CHECK(roomgraph_resolve_json(u8(resolve_doc), resolve_len, NULL) == ROOMGRAPH_NULL_ARGUMENT, "resolve: null out");
    CHECK(roomgraph_resolve_json(NULL, 5, &bad) == ROOMGRAPH_NULL_ARGUMENT, "resolve: null request");

    roomgraph_buffer verdict = {NULL, 0};
    CHECK(roomgraph_auth_check_json(u8(auth_doc), auth_len, &verdict) == ROOMGRAPH_OK, "auth check");
    CHECK(contains(&verdict, "\"allowed\""), "a verdict");
    roomgraph_buffer_free(&verdict);
    CHECK(verdict.ptr == NULL && verdict.len == 0, "freed buffers are reset");
    roomgraph_buffer_free(&verdict); /* twice is harmless */
    roomgraph_buffer_free(NULL);
    CHECK(roomgraph_auth_check_json(u8("[1]"), 3, &verdict) == ROOMGRAPH_INVALID_REQUEST, "auth check: bad document");
}

static void test_sessions(const char *resolve_doc, size_t resolve_len, const char *begin_doc, size_t begin_len,
                          const char *supply_doc, size_t supply_len, const roomgraph_buffer *resolved) {
    roomgraph_resolve_session *session = NULL;
    roomgraph_buffer out = {NULL, 0};
    CHECK(roomgraph_resolve_begin(u8(begin_doc), begin_len, &session, &out) == ROOMGRAPH_OK, "begin");
    CHECK(session != NULL && contains(&out, "\"need\""), "the session asks for events");
    roomgraph_buffer_free(&out);
    CHECK(roomgraph_resolve_supply(session, u8(supply_doc), supply_len, &out) == ROOMGRAPH_OK, "supply");
    CHECK(contains(&out, "\"done\""), "done after the events");
    /* The answer is the stateless resolver's. */
    char *state = malloc(resolved->len + 1);
    memcpy(state, resolved->ptr, resolved->len);
    state[resolved->len] = '\0';
    CHECK(contains(&out, state), "host-driven = stateless");
    free(state);
    roomgraph_buffer_free(&out);
    CHECK(roomgraph_resolve_supply(session, u8(supply_doc), supply_len, &out) == ROOMGRAPH_SESSION_FINISHED,
          "a finished session refuses more");
    CHECK(roomgraph_resolve_supply(NULL, u8(supply_doc), supply_len, &out) == ROOMGRAPH_NULL_ARGUMENT, "null session");
    roomgraph_resolve_free(session);
    roomgraph_resolve_free(NULL);

    /* Everything shipped up front: done at once. */
    session = NULL;
    CHECK(roomgraph_resolve_begin(u8(resolve_doc), resolve_len, &session, &out) == ROOMGRAPH_OK, "begin whole");
    CHECK(contains(&out, "\"done\""), "done at once");
    roomgraph_buffer_free(&out);
    roomgraph_resolve_free(session);

    /* A withheld event ends the session with the id named. */
    session = NULL;
    CHECK(roomgraph_resolve_begin(u8(begin_doc), begin_len, &session, &out) == ROOMGRAPH_OK, "begin again");
    roomgraph_buffer_free(&out);
    CHECK(roomgraph_resolve_supply(session, u8("{\"events\":[]}"), 13, &out) == ROOMGRAPH_INVALID_REQUEST,
          "withheld events");
    CHECK(strstr(last_error(), "names event") != NULL, "the detail names the event");
    CHECK(roomgraph_resolve_supply(session, u8("{\"events\":[]}"), 13, &out) == ROOMGRAPH_SESSION_FINISHED,
          "a failed session is finished");
    roomgraph_resolve_free(session);
    session = NULL;
    CHECK(roomgraph_resolve_begin(u8("{"), 1, &session, &out) == ROOMGRAPH_INVALID_REQUEST && session == NULL,
          "bad begin document: no session");
    CHECK(roomgraph_resolve_begin(u8(begin_doc), begin_len, NULL, &out) == ROOMGRAPH_NULL_ARGUMENT, "null session out");
}

static void test_engine(const char *sample, size_t sample_len, const char *first_id, const char *dir) {
    /* The ingest document: {"pdus": [line, line, ...]}. */
    size_t doc_cap = sample_len + 64;
    char *doc = malloc(doc_cap);
    size_t n = 0;
    n += (size_t)sprintf(doc + n, "{\"pdus\":[");
    int first = 1;
    const char *p = sample;
    while (*p) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            if (!first) doc[n++] = ',';
            memcpy(doc + n, p, len);
            n += len;
            first = 0;
        }
        if (!end) break;
        p = end + 1;
    }
    n += (size_t)sprintf(doc + n, "]}");

    roomgraph_engine *engine = NULL;
    CHECK(roomgraph_engine_open(u8(dir), strlen(dir), &engine) == ROOMGRAPH_OK && engine != NULL, "open");
    roomgraph_buffer out = {NULL, 0};
    CHECK(roomgraph_engine_ingest_json(engine, u8(doc), n, &out) == ROOMGRAPH_OK, "ingest");
    CHECK(contains(&out, "\"accepted\":13"), "all 13 sample events accepted");
    roomgraph_buffer_free(&out);
    const char *room = "!sample:example.org";
    CHECK(roomgraph_engine_state_json(engine, u8(room), strlen(room), &out) == ROOMGRAPH_OK, "state");
    CHECK(contains(&out, "\"m.room.create\""), "current state");
    roomgraph_buffer_free(&out);
    CHECK(roomgraph_engine_state_at_json(engine, u8(first_id), strlen(first_id), 0, &out) == ROOMGRAPH_OK,
          "state after the create event");
    roomgraph_buffer_free(&out);
    CHECK(roomgraph_engine_state_at_json(engine, u8(first_id), strlen(first_id), 1, &out) == ROOMGRAPH_OK &&
              out.len == 2, "nothing before the create event");
    roomgraph_buffer_free(&out);
    CHECK(roomgraph_engine_event_json(engine, u8(first_id), strlen(first_id), &out) == ROOMGRAPH_OK &&
              contains(&out, "\"accepted\""), "event");
    roomgraph_buffer_free(&out);
    CHECK(roomgraph_engine_extremities_json(engine, u8(room), strlen(room), &out) == ROOMGRAPH_OK &&
              contains(&out, "[\"$"), "extremities");
    roomgraph_buffer_free(&out);

    CHECK(roomgraph_engine_event_json(engine, u8("$nope"), 5, &out) == ROOMGRAPH_NOT_FOUND, "unknown event");
    char detail[256];
    size_t len = 0;
    CHECK(roomgraph_engine_last_error(engine, (uint8_t *)detail, sizeof detail - 1, &len) == ROOMGRAPH_OK, "detail");
    detail[len] = '\0';
    CHECK(strstr(detail, "$nope") != NULL, "the engine's detail names the event");
    CHECK(roomgraph_engine_state_json(engine, u8("!other:x"), 8, &out) == ROOMGRAPH_NOT_FOUND, "unknown room");
    CHECK(roomgraph_engine_ingest_json(engine, u8("{\"pdus\":5}"), 10, &out) == ROOMGRAPH_INVALID_REQUEST,
          "bad ingest document");
    CHECK(out.ptr == NULL, "nothing allocated on failure");
    CHECK(roomgraph_engine_ingest_json(engine, u8("{\"pdus\":[{\"type\":1}]}"), 21, &out) == ROOMGRAPH_OK &&
              contains(&out, "\"invalid\":1"), "an invalid PDU is an outcome, not a failure");
    roomgraph_buffer_free(&out);
    CHECK(roomgraph_engine_state_json(NULL, u8(room), strlen(room), &out) == ROOMGRAPH_NULL_ARGUMENT, "null engine");
    CHECK(roomgraph_engine_state_json(engine, u8(room), strlen(room), NULL) == ROOMGRAPH_NULL_ARGUMENT, "null out");

    /* A second engine on the same store is refused (RocksDB's lock); the first is unaffected. */
    roomgraph_engine *second = NULL;
    CHECK(roomgraph_engine_open(u8(dir), strlen(dir), &second) == ROOMGRAPH_STORE_ERROR && second == NULL,
          "one engine per store");
    roomgraph_engine_close(engine);
    roomgraph_engine_close(NULL);

    /* Reopened: what was acknowledged is there. */
    engine = NULL;
    CHECK(roomgraph_engine_open(u8(dir), strlen(dir), &engine) == ROOMGRAPH_OK, "reopen");
    CHECK(roomgraph_engine_event_json(engine, u8(first_id), strlen(first_id), &out) == ROOMGRAPH_OK, "durable");
    roomgraph_buffer_free(&out);
    roomgraph_engine_close(engine);
    CHECK(roomgraph_engine_open(NULL, 3, &engine) == ROOMGRAPH_NULL_ARGUMENT, "null path");
    free(doc);
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s SAMPLE IDS RESOLVE BEGIN SUPPLY AUTH STORE_DIR\n", argv[0]);
        return 2;
    }
    size_t sample_len, ids_len, resolve_len, begin_len, supply_len, auth_len;
    char *sample = read_file(argv[1], &sample_len);
    char *ids = read_file(argv[2], &ids_len);
    char *resolve_doc = read_file(argv[3], &resolve_len);
    char *begin_doc = read_file(argv[4], &begin_len);
    char *supply_doc = read_file(argv[5], &supply_len);
    char *auth_doc = read_file(argv[6], &auth_len);
    char *nl = strchr(ids, '\n');
    if (nl) *nl = '\0';
    const char *first_line_end = strchr(sample, '\n');
    size_t first_len = first_line_end ? (size_t)(first_line_end - sample) : sample_len;

    test_messages();
    test_pdu(sample, first_len, ids);
    roomgraph_buffer resolved = {NULL, 0};
    test_documents(resolve_doc, resolve_len, auth_doc, auth_len, &resolved);
    test_sessions(resolve_doc, resolve_len, begin_doc, begin_len, supply_doc, supply_len, &resolved);
    roomgraph_buffer_free(&resolved);
    test_engine(sample, sample_len, ids, argv[7]);

    free(sample);
    free(ids);
    free(resolve_doc);
    free(begin_doc);
    free(supply_doc);
    free(auth_doc);
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
