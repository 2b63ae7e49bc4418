/* SPDX-License-Identifier: MIT */
/* lib/boot/tpm.c against golden bytes: the commands as TPM 2.0 Part 3 lays them
 * out (swtpm accepts exactly these, tests/vm/test-tpm.sh), and responses
 * captured from swtpm 0.7.1 (libtpms), each then broken one rule at a time. */
#include <string.h>

#include "test.h"
#include "tpm.h"

#define GOLDEN_EVENT_DIGEST "c79e0115349b86d9822e5fad2058226ce1aed92098e01835dfb3b26c72e26368"
#define GOLDEN_EXPECTED_PCR "30533511446f13d1daab933360714b02cf991c779b1e3b116636debbb18b9536"

/* Lowercase hex into out; 0 bytes when it does not fit or is not hex. */
static size_t unhex(const char *hex, uint8_t *out, size_t size) {
        size_t n = strlen(hex) / 2;
        return n <= size && kos_hex_decode(hex, 2 * n, out, n) == 0 ? n : 0;
}

static int built_equals(int built, const uint8_t *buf, const char *hex) {
        uint8_t want[512];
        size_t n = unhex(hex, want, sizeof want);
        return built == (int)n && memcmp(buf, want, n) == 0;
}

#define PW_SESSION "00000009" "40000009" "0000" "00" "0000"

TEST(tpm_builds_nv_read_public) {
        uint8_t b[64];
        CHECK(built_equals(kos_tpm_build_nv_read_public(b, sizeof b, KOS_TPM_FLOOR_INDEX), b,
                           "8001" "0000000e" "00000169" "01004b4f"));
}

TEST(tpm_builds_nv_read_with_the_index_authorizing_itself) {
        uint8_t b[64];
        CHECK(built_equals(kos_tpm_build_nv_read(b, sizeof b, KOS_TPM_FLOOR_INDEX, 8, 0), b,
                           "8002" "00000023" "0000014e" "01004b4f" "01004b4f" PW_SESSION "0008" "0000"));
}

TEST(tpm_builds_nv_increment) {
        uint8_t b[64];
        CHECK(built_equals(kos_tpm_build_nv_increment(b, sizeof b, KOS_TPM_FLOOR_INDEX), b,
                           "8002" "0000001f" "00000134" "01004b4f" "01004b4f" PW_SESSION));
}

TEST(tpm_builds_nv_define_space_of_the_floor_counter) {
        uint8_t b[64];
        struct kos_tpm_nv_public pub = {KOS_TPM_FLOOR_INDEX, KOS_TPM_ALG_SHA256, KOS_TPM_FLOOR_ATTRIBUTES, 0, 8};
        CHECK(built_equals(kos_tpm_build_nv_define_space(b, sizeof b, &pub), b,
                           "8002" "0000002d" "0000012a" "40000001" PW_SESSION "0000"
                           "000e" "01004b4f" "000b" "02040014" "0000" "0008"));
}

TEST(tpm_builds_nv_undefine_space) {
        uint8_t b[64];
        CHECK(built_equals(kos_tpm_build_nv_undefine_space(b, sizeof b, KOS_TPM_FLOOR_INDEX), b,
                           "8002" "0000001f" "00000122" "40000001" "01004b4f" PW_SESSION));
}

TEST(tpm_builds_pcr_read_of_pcr_8_in_the_sha256_bank) {
        uint8_t b[64];
        CHECK(built_equals(kos_tpm_build_pcr_read(b, sizeof b, 8), b,
                           "8001" "00000014" "0000017e" "00000001" "000b" "03" "000100"));
        CHECK(kos_tpm_build_pcr_read(b, sizeof b, 24) == -EINVAL);
}

TEST(tpm_builds_pcr_extend_of_both_banks) {
        uint8_t b[128], sha256[32], sha1[20];
        memset(sha256, 0xaa, sizeof sha256);
        memset(sha1, 0xbb, sizeof sha1);
        CHECK(built_equals(kos_tpm_build_pcr_extend(b, sizeof b, 8, sha256, sha1), b,
                           "8002" "00000057" "00000182" "00000008" PW_SESSION "00000002"
                           "000b" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                           "0004" "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"));
        CHECK(kos_tpm_build_pcr_extend(b, 60, 8, sha256, sha1) == -ENOBUFS);
}

/* Responses from swtpm. */
#define RESP_READ_PUBLIC                                                                                   \
        "80010000003e00000000" "000e01004b4f000b22040014000000080022000bca0a6f9f994c91ae746db7c50b41ac1a503f" \
        "408e78382ff7fa0eb9499fc4ae02"
#define RESP_NV_READ "80020000001d00000000" "0000000a" "00080000000000000005" "0000010000"
#define RESP_INCREMENT "800200000013000000000000000000000100" "00"
#define RESP_PCR_READ                                                                                      \
        "80010000003e00000000" "00000015" "00000001000b03000100" "00000001" "0020"                           \
        "90f4b39548df55ad6187a1d20d731ecee78c545b94afd16f42ef7592d99cd365"

static int parse(const char *hex, bool sessions, uint32_t *rc, const uint8_t **p, size_t *n, uint8_t *buf) {
        size_t len = unhex(hex, buf, 4096);
        return kos_tpm_parse_response(buf, len, sessions, rc, p, n);
}

TEST(tpm_parses_nv_read_public_of_the_floor_counter) {
        static uint8_t buf[4096];
        const uint8_t *p;
        size_t n;
        uint32_t rc;
        struct kos_tpm_nv_public pub;
        CHECK(parse(RESP_READ_PUBLIC, false, &rc, &p, &n, buf) == 0 && rc == 0);
        CHECK(kos_tpm_parse_nv_read_public(p, n, &pub) == 0);
        CHECK(pub.index == KOS_TPM_FLOOR_INDEX && pub.name_alg == KOS_TPM_ALG_SHA256);
        CHECK(pub.attributes == (KOS_TPM_FLOOR_ATTRIBUTES | KOS_TPM_NV_WRITTEN) && pub.data_size == 8);
        CHECK(pub.auth_policy_size == 0);
        /* one byte short, one byte too many, a public area claiming more */
        CHECK(kos_tpm_parse_nv_read_public(p, n - 1, &pub) == -EBADMSG);
        uint8_t longer[128];
        memcpy(longer, p, n);
        longer[n] = 0;
        CHECK(kos_tpm_parse_nv_read_public(longer, n + 1, &pub) == -EBADMSG);
        longer[1] = 0x0f;
        CHECK(kos_tpm_parse_nv_read_public(longer, n, &pub) == -EBADMSG);
}

TEST(tpm_parses_nv_read_and_its_session) {
        static uint8_t buf[4096];
        const uint8_t *p;
        size_t n;
        uint32_t rc;
        uint8_t data[8];
        CHECK(parse(RESP_NV_READ, true, &rc, &p, &n, buf) == 0 && rc == 0 && n == 10);
        CHECK(kos_tpm_parse_nv_read(p, n, 8, data) == 0 && data[7] == 5);
        CHECK(kos_tpm_parse_nv_read(p, n, 4, data) == -EBADMSG); /* not what was asked */
        /* a parameterSize past the end, a session area cut short */
        CHECK(parse("80020000001d00000000" "0000000b" "00080000000000000005" "0000010000", true, &rc, &p, &n,
                    buf) == -EBADMSG);
        CHECK(parse("80020000001c00000000" "0000000a" "00080000000000000005" "00000100", true, &rc, &p, &n, buf) ==
              -EBADMSG);
        /* a response without sessions to a command with them */
        CHECK(parse("80010000001d00000000" "0000000a" "00080000000000000005" "0000010000", true, &rc, &p, &n,
                    buf) == -EBADMSG);
}

TEST(tpm_parses_increment_response) {
        static uint8_t buf[4096];
        const uint8_t *p;
        size_t n;
        uint32_t rc;
        CHECK(parse(RESP_INCREMENT, true, &rc, &p, &n, buf) == 0 && rc == 0 && n == 0);
}

TEST(tpm_parses_pcr_read_of_exactly_the_pcr_asked_for) {
        static uint8_t buf[4096];
        const uint8_t *p;
        size_t n;
        uint32_t rc;
        uint8_t value[32], want[32];
        CHECK(parse(RESP_PCR_READ, false, &rc, &p, &n, buf) == 0 && rc == 0);
        CHECK(kos_tpm_parse_pcr_read(p, n, 8, value) == 0);
        unhex("90f4b39548df55ad6187a1d20d731ecee78c545b94afd16f42ef7592d99cd365", want, sizeof want);
        CHECK(memcmp(value, want, 32) == 0);
        CHECK(kos_tpm_parse_pcr_read(p, n, 9, value) == -EBADMSG); /* the TPM selected another PCR */
        CHECK(kos_tpm_parse_pcr_read(p, n - 1, 8, value) == -EBADMSG);
}

TEST(tpm_parses_error_responses_as_bare_headers) {
        static uint8_t buf[4096];
        const uint8_t *p;
        size_t n;
        uint32_t rc;
        CHECK(parse("80010000000a0000018b", false, &rc, &p, &n, buf) == 0 && rc == 0x18b && n == 0);
        CHECK(kos_tpm_rc_to_errno(rc) == -ENOENT);
        CHECK(parse("80010000000a0000014a", true, &rc, &p, &n, buf) == 0 && kos_tpm_rc_to_errno(rc) == -ENODATA);
        CHECK(parse("80010000000b0000018b00", false, &rc, &p, &n, buf) == -EBADMSG); /* trailing byte */
        CHECK(parse("80010000000c0000018b", false, &rc, &p, &n, buf) == -EBADMSG);   /* size is not the length */
        CHECK(parse("800100000009000000", false, &rc, &p, &n, buf) == -EBADMSG);     /* shorter than a header */
        CHECK(kos_tpm_rc_to_errno(0x14c) == -EEXIST && kos_tpm_rc_to_errno(0x9a2) == -EACCES);
        CHECK(kos_tpm_rc_to_errno(0x922) == -EAGAIN && kos_tpm_rc_to_errno(0x101) == -EPROTO);
}

/* The measurement, computed independently: sha256("kos-manifest:" || id)
 * for id = 32 bytes of 0x11, and the PCR from zero (computed with Python's
 * hashlib). */
TEST(tpm_manifest_event_and_expected_pcr_match_golden_values) {
        uint8_t id[32], digest[32], pcr[32], want[32];
        memset(id, 0x11, sizeof id);
        CHECK(kos_tpm_manifest_event_digest(id, digest) == 0);
        unhex(GOLDEN_EVENT_DIGEST, want, sizeof want);
        CHECK(memcmp(digest, want, 32) == 0);
        CHECK(kos_tpm_manifest_expected_pcr(id, pcr) == 0);
        unhex(GOLDEN_EXPECTED_PCR, want, sizeof want);
        CHECK(memcmp(pcr, want, 32) == 0);
}
