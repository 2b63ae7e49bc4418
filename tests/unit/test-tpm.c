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
#define POLICY_SESSION "00000009" "03000000" "0000" "00" "0000"

TEST(tpm_builds_nv_read_public) {
        uint8_t b[64];
        CHECK(built_equals(kos_tpm_build_nv_read_public(b, sizeof b, KOS_TPM_FLOOR_INDEX), b,
                           "8001" "0000000e" "00000169" "01004b4f"));
}

TEST(tpm_builds_nv_read_with_the_index_authorizing_itself) {
        uint8_t b[64];
        /* the first definition: the empty password */
        CHECK(built_equals(kos_tpm_build_nv_read(b, sizeof b, KOS_TPM_FLOOR_INDEX, KOS_TPM_RS_PW, 8, 0), b,
                           "8002" "00000023" "0000014e" "01004b4f" "01004b4f" PW_SESSION "0008" "0000"));
        /* the counter: a policy session, not continued */
        CHECK(built_equals(kos_tpm_build_nv_read(b, sizeof b, KOS_TPM_FLOOR_INDEX, 0x03000000, 8, 0), b,
                           "8002" "00000023" "0000014e" "01004b4f" "01004b4f" POLICY_SESSION "0008" "0000"));
}

TEST(tpm_builds_nv_increment) {
        uint8_t b[64];
        CHECK(built_equals(kos_tpm_build_nv_increment(b, sizeof b, KOS_TPM_FLOOR_INDEX, KOS_TPM_RS_PW), b,
                           "8002" "0000001f" "00000134" "01004b4f" "01004b4f" PW_SESSION));
        CHECK(built_equals(kos_tpm_build_nv_increment(b, sizeof b, KOS_TPM_FLOOR_INDEX, 0x03000000), b,
                           "8002" "0000001f" "00000134" "01004b4f" "01004b4f" POLICY_SESSION));
}

/* PolicyOR(PolicyCommandCode(NV_Read), PolicyCommandCode(NV_Increment)),
 * as Python's hashlib and tpm2-tools' trial sessions compute it
 * (tpm2_policycommandcode TPM2_CC_NV_Read, ... NV_Increment, tpm2_policyor). */
#define GOLDEN_FLOOR_POLICY "c9b646d6deef4ab381a4b2346196479fad7122c97cbe46b15c455c14f3256fd2"
#define GOLDEN_BRANCH_READ "47ce3032d8bad1f3089cb0c09088de43501491d460402b90cd1b7fc0b68ca92f"
#define GOLDEN_BRANCH_INCREMENT "e8c02d3c5e701670cbaa327db1a2e9f3f41b2c22793e5c669a6e7f44b912f6c0"

TEST(tpm_floor_policy_is_policy_or_of_nv_read_and_nv_increment) {
        uint8_t digest[32], want[32];
        CHECK(kos_tpm_floor_policy_digest(digest) == 0);
        unhex(GOLDEN_FLOOR_POLICY, want, sizeof want);
        CHECK(memcmp(digest, want, 32) == 0);
}

TEST(tpm_builds_nv_define_space_of_the_floor_counter_with_its_policy) {
        uint8_t b[128];
        struct kos_tpm_nv_public pub = {.index = KOS_TPM_FLOOR_INDEX, .name_alg = KOS_TPM_ALG_SHA256,
                                        .attributes = KOS_TPM_FLOOR_ATTRIBUTES, .auth_policy_size = 32,
                                        .data_size = 8};
        CHECK(kos_tpm_floor_policy_digest(pub.auth_policy) == 0);
        CHECK(built_equals(kos_tpm_build_nv_define_space(b, sizeof b, &pub), b,
                           "8002" "0000004d" "0000012a" "40000001" PW_SESSION "0000"
                           "002e" "01004b4f" "000b" "02080018" "0020" GOLDEN_FLOOR_POLICY "0008"));
        /* the first definition, as KOS defined it before: no policy */
        struct kos_tpm_nv_public first = {.index = KOS_TPM_FLOOR_INDEX, .name_alg = KOS_TPM_ALG_SHA256,
                                          .attributes = KOS_TPM_FLOOR_FIRST_ATTRIBUTES, .data_size = 8};
        CHECK(built_equals(kos_tpm_build_nv_define_space(b, sizeof b, &first), b,
                           "8002" "0000002d" "0000012a" "40000001" PW_SESSION "0000"
                           "000e" "01004b4f" "000b" "02040014" "0000" "0008"));
        pub.auth_policy_size = 65;
        CHECK(kos_tpm_build_nv_define_space(b, sizeof b, &pub) == -EINVAL);
}

TEST(tpm_builds_policy_command_code_and_policy_or) {
        uint8_t b[128], branches[2][32];
        CHECK(built_equals(kos_tpm_build_policy_command_code(b, sizeof b, 0x03000000, KOS_TPM_CC_NV_READ), b,
                           "8001" "00000012" "0000016c" "03000000" "0000014e"));
        unhex(GOLDEN_BRANCH_READ, branches[0], 32);
        unhex(GOLDEN_BRANCH_INCREMENT, branches[1], 32);
        CHECK(built_equals(kos_tpm_build_policy_or(b, sizeof b, 0x03000000, (const uint8_t(*)[32])branches, 2), b,
                           "8001" "00000056" "00000171" "03000000" "00000002"
                           "0020" GOLDEN_BRANCH_READ "0020" GOLDEN_BRANCH_INCREMENT));
        CHECK(kos_tpm_build_policy_or(b, sizeof b, 0x03000000, (const uint8_t(*)[32])branches, 1) == -EINVAL);
        CHECK(kos_tpm_build_policy_or(b, 60, 0x03000000, (const uint8_t(*)[32])branches, 2) == -ENOBUFS);
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

/* Responses from swtpm. NV_ReadPublic of the counter, and of its first
 * definition (no policy). */
#define RESP_READ_PUBLIC                                                                                   \
        "80010000005e00000000" "002e01004b4f000b220800180020" GOLDEN_FLOOR_POLICY "0008"                   \
        "0022000b459d0491e450520414e28cd7eaad3aa1f3472438232a5779541c6fe8236fd72d"
#define RESP_READ_PUBLIC_FIRST                                                                             \
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
        uint8_t policy[32];
        CHECK(kos_tpm_floor_policy_digest(policy) == 0);
        CHECK(pub.auth_policy_size == 32 && memcmp(pub.auth_policy, policy, 32) == 0);
        /* one byte short, one byte too many, a public area claiming more */
        CHECK(kos_tpm_parse_nv_read_public(p, n - 1, &pub) == -EBADMSG);
        uint8_t longer[128];
        memcpy(longer, p, n);
        longer[n] = 0;
        CHECK(kos_tpm_parse_nv_read_public(longer, n + 1, &pub) == -EBADMSG);
        longer[1] = 0x2f;
        CHECK(kos_tpm_parse_nv_read_public(longer, n, &pub) == -EBADMSG);
        /* an authPolicy longer than SHA-512's: not copied */
        memcpy(longer, p, n);
        longer[12] = 0x00, longer[13] = 0x41; /* authPolicy.size, after size, index, nameAlg, attributes */
        CHECK(kos_tpm_parse_nv_read_public(longer, n, &pub) == -EBADMSG);
        /* the first definition */
        CHECK(parse(RESP_READ_PUBLIC_FIRST, false, &rc, &p, &n, buf) == 0 && rc == 0);
        CHECK(kos_tpm_parse_nv_read_public(p, n, &pub) == 0);
        CHECK(pub.attributes == (KOS_TPM_FLOOR_FIRST_ATTRIBUTES | KOS_TPM_NV_WRITTEN) && pub.auth_policy_size == 0);
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
        CHECK(kos_tpm_rc_to_errno(0x14b) == -ENOSPC);
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

/* The codes a refused floor or seal names instead of a number (issue 19,
 * defect 11: an owner password gave "TPM_RC_0x9a2"). */
TEST(tpm_names_bad_authorization_and_full_nv_memory) {
        char buf[32];
        CHECK(strcmp(kos_tpm_rc_name(0x9a2, buf, sizeof buf), "TPM_RC_BAD_AUTH") == 0); /* session 1 */
        CHECK(kos_tpm_rc_is_bad_auth(0x9a2) && kos_tpm_rc_is_bad_auth(0x98e) && !kos_tpm_rc_is_bad_auth(0x99d));
        CHECK(!kos_tpm_rc_is_bad_auth(0x14b) && !kos_tpm_rc_is_bad_auth(0));
        CHECK(strcmp(kos_tpm_rc_name(0x14b, buf, sizeof buf), "TPM_RC_NV_SPACE") == 0);
        CHECK(strcmp(kos_tpm_rc_name(0x12f, buf, sizeof buf), "TPM_RC_AUTH_UNAVAILABLE") == 0);
        CHECK(strcmp(kos_tpm_rc_name(0x14a, buf, sizeof buf), "TPM_RC_NV_UNINITIALIZED") == 0);
}
