/* SPDX-License-Identifier: MIT */
/* The sealing commands of lib/boot/tpm.c and the sealed-key file of
 * lib/system/tpm-seal.c against golden bytes: the commands as TPM 2.0 Part 3 lays
 * them out, and the responses swtpm 0.7.1 (libtpms) gave to exactly these
 * commands (a fresh TPM, the key 16 x 0x4b sealed to PCR 15, then unsealed
 * after the Boot Kernel's marker), each then broken one rule at a time. */
#include <string.h>

#include "test.h"
#include "tpm-seal.h"

/* Computed independently with Python's hashlib:
 * E(0, sha256("kos-verified-boot")), then SHA-256(0^32 || 0000017f ||
 * 00000001 000b 03 008000 || SHA-256(that)); and with PCR 7 = 32 x 0xaa. */
#define GOLDEN_MARKER_PCR "0a81cf09800581e3fbd30e30a23c2628991e78f697b5fd4c62cc53358e7b097d"
#define GOLDEN_POLICY_15 "c0e6904b9099830181de566f0a1355bc445b5e18c90ebdb72f73150282b2882b"
#define GOLDEN_POLICY_7_15 "35622df90bc6d841205e60e4bae1ff68891813553b1334c0a45caae13605f8c2"

#define RESP_CREATE_PRIMARY \
        "80020000013a000000008000000000000123005a0023000b000304720000000600800043001000030010002022609657" \
        "600f21e0145e03d32563e3045de495dae439c62a8156849dfc0ac3a00020420e94219881b48f432017c41db317c56327" \
        "2ace2b8fda6083d7ea8add8ba6770037000000000020e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495" \
        "991b7852b855010010000440000001000440000001000000205da041bac0ee3135aebb0cadfba497c6a1877fae832dd3" \
        "d1f8f7a871b825e8548021400000010040f8c4a8877d9984eca66712244267571308597fe9799d1f398874a752cc12df" \
        "3a3761625b1f0cdb8b15d0e402fad978aaaf92abda3d7f78072565a83beeeabf230022000b2936ea9e501c3a5dcc64aa" \
        "1eb63596e6d85f746f07e2d4dc071cf663fbf436180000010000"

#define RESP_CREATE \
        "8002000001d200000000000001bf008e00206370c13e1bbedf767a24db736065ec1e26e894d6f6ebfe67a3531a103992" \
        "ea1f001035051ac42446a063cb88af3db6d51e23e16a9978d4af0a79e4d43c8bf40d3e94e6893bd2e7693f1f9ea7b0c3" \
        "df75ac924ebbf716f8219efd433cc1adee1bca38b94d34d552d2c92aa253e1d72d12c583d547a79487820423dd7a66f8" \
        "5af5db9573c20326825b0d36061a004e0008000b000004120020c0e6904b9099830181de566f0a1355bc445b5e18c90e" \
        "bdb72f73150282b2882b00100020afbc5f07deb1169cdbb01e95fac5c92655dc1164845ca5cd9a8bbfe48eac3c9e0073" \
        "000000000020e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85501000b0022000b2936ea" \
        "9e501c3a5dcc64aa1eb63596e6d85f746f07e2d4dc071cf663fbf436180022000be2e43b24010fe31f6ecb3518d0a429" \
        "0af7d06dfea334e2a1fefc99d453a2c638000000207358045b5c3eda5e46e1a60f4ae9fb4b91e555a9d41f0e7762d109" \
        "fbe5e271dd80214000000100407e6c43e9cd94699516021df287bd5763c91b33ca98006a44a158ae807821ed0e3a7156" \
        "e9d65ace61f416be168d43461094e347336a4e25ab92668c72141f74140000010000"

#define CMD_LOAD \
        "8002000000fb000001578000000000000009400000090000000000008e00206370c13e1bbedf767a24db736065ec1e26" \
        "e894d6f6ebfe67a3531a103992ea1f001035051ac42446a063cb88af3db6d51e23e16a9978d4af0a79e4d43c8bf40d3e" \
        "94e6893bd2e7693f1f9ea7b0c3df75ac924ebbf716f8219efd433cc1adee1bca38b94d34d552d2c92aa253e1d72d12c5" \
        "83d547a79487820423dd7a66f85af5db9573c20326825b0d36061a004e0008000b000004120020c0e6904b9099830181" \
        "de566f0a1355bc445b5e18c90ebdb72f73150282b2882b00100020afbc5f07deb1169cdbb01e95fac5c92655dc116484" \
        "5ca5cd9a8bbfe48eac3c9e"

#define RESP_LOAD \
        "80020000003b0000000080000001000000240022000b237825ebf2abafb5531f9ed47721c5eeb39e885316e9640598f1" \
        "287ddca557c10000010000"

#define RESP_START_AUTH_SESSION \
        "80010000002000000000030000000010f39574ea5523091609ef4fea562cb4fe"

#define RESP_UNSEAL \
        "800200000035000000000000001200104b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b0010383f37cecc959c7c17545f364ced" \
        "40e0000000"

static size_t unhex(const char *hex, uint8_t *out, size_t size) {
        size_t n = strlen(hex) / 2;
        return n <= size && kos_hex_decode(hex, 2 * n, out, n) == 0 ? n : 0;
}

static int built_equals(int built, const uint8_t *buf, const char *hex) {
        static uint8_t want[1024];
        size_t n = unhex(hex, want, sizeof want);
        return n > 0 && built == (int)n && memcmp(buf, want, n) == 0;
}

#define PW_SESSION "00000009" "40000009" "0000" "00" "0000"

TEST(tpm_builds_create_primary_from_the_fixed_ecc_storage_template) {
        uint8_t b[128];
        CHECK(built_equals(kos_tpm_build_create_primary(b, sizeof b), b,
                           "8002" "00000043" "00000131" "40000001" PW_SESSION "0004" "0000" "0000"
                           "001a" "0023" "000b" "00030472" "0000" "0006" "0080" "0043" "0010" "0003" "0010" "0000" "0000"
                           "0000" "00000000"));
        CHECK(kos_tpm_build_create_primary(b, 40) == -ENOBUFS);
}

TEST(tpm_builds_create_of_a_sealed_object_usable_only_through_its_policy) {
        uint8_t b[256], key[16], policy[32];
        memset(key, 0x4b, sizeof key);
        unhex(GOLDEN_POLICY_15, policy, sizeof policy);
        CHECK(built_equals(kos_tpm_build_create(b, sizeof b, 0x80000000, key, sizeof key, policy), b,
                           "8002" "00000067" "00000153" "80000000" PW_SESSION "0014" "0000" "0010"
                           "4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b" "002e" "0008" "000b"
                           "00000412" /* fixedTPM fixedParent noDA: no userWithAuth */
                           "0020" GOLDEN_POLICY_15 "0010" "0000" "0000" "00000000"));
        uint8_t big[KOS_TPM_SEAL_DATA_MAX + 1] = {0};
        CHECK(kos_tpm_build_create(b, sizeof b, 0x80000000, big, sizeof big, policy) == -EINVAL);
        CHECK(kos_tpm_build_create(b, sizeof b, 0x80000000, big, 0, policy) == -EINVAL);
}

TEST(tpm_builds_load_of_the_blobs_create_returned) {
        static uint8_t resp[4096], b[1024], priv[KOS_TPM_BLOB_MAX], pub[KOS_TPM_BLOB_MAX];
        const uint8_t *p;
        size_t n;
        uint32_t rc;
        uint16_t priv_len, pub_len;
        CHECK(kos_tpm_parse_response(resp, unhex(RESP_CREATE, resp, sizeof resp), true, &rc, &p, &n) == 0 && rc == 0);
        CHECK(kos_tpm_parse_create(p, n, priv, &priv_len, pub, &pub_len) == 0);
        CHECK(priv_len == 0x8e && pub_len == 0x4e);
        CHECK(built_equals(kos_tpm_build_load(b, sizeof b, 0x80000000, priv, priv_len, pub, pub_len), b, CMD_LOAD));
}

TEST(tpm_builds_an_unsalted_unbound_sha256_policy_session) {
        uint8_t b[64], nonce[16];
        memset(nonce, 0x6e, sizeof nonce);
        CHECK(built_equals(kos_tpm_build_start_auth_session(b, sizeof b, nonce), b,
                           "8001" "0000002b" "00000176" "40000007" "40000007" "0010" "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e"
                           "0000" "01" "0010" "000b"));
}

TEST(tpm_builds_policy_pcr_with_the_current_values_of_the_selection) {
        uint8_t b[64];
        CHECK(built_equals(kos_tpm_build_policy_pcr(b, sizeof b, 0x03000000, 1u << 15), b,
                           "8001" "0000001a" "0000017f" "03000000" "0000" "00000001" "000b" "03" "008000"));
        CHECK(built_equals(kos_tpm_build_policy_pcr(b, sizeof b, 0x03000000, 1u << 7 | 1u << 15), b,
                           "8001" "0000001a" "0000017f" "03000000" "0000" "00000001" "000b" "03" "808000"));
        CHECK(kos_tpm_build_policy_pcr(b, sizeof b, 0x03000000, 0) == -EINVAL);
        CHECK(kos_tpm_build_policy_pcr(b, sizeof b, 0x03000000, 1u << 24) == -EINVAL);
}

TEST(tpm_builds_unseal_authorized_by_the_policy_session_not_continued) {
        uint8_t b[64];
        CHECK(built_equals(kos_tpm_build_unseal(b, sizeof b, 0x80000001, 0x03000001), b,
                           "8002" "0000001b" "0000015e" "80000001" "00000009" "03000001" "0000" "00" "0000"));
}

TEST(tpm_builds_flush_context) {
        uint8_t b[64];
        CHECK(built_equals(kos_tpm_build_flush_context(b, sizeof b, 0x03000000), b, "8001" "0000000e" "00000165" "03000000"));
}

TEST(tpm_parses_create_primary_response_after_its_handle) {
        static uint8_t resp[4096];
        const uint8_t *p;
        size_t len = unhex(RESP_CREATE_PRIMARY, resp, sizeof resp), n;
        uint32_t rc, handle;
        CHECK(kos_tpm_parse_response_handle(resp, len, true, &rc, &handle, &p, &n) == 0 && rc == 0);
        CHECK(handle == 0x80000000);
        CHECK(kos_tpm_parse_create_primary(p, n) == 0);
        CHECK(kos_tpm_parse_create_primary(p, n - 1) == -EBADMSG);
        /* without the handle, the handle is taken for the parameter size */
        CHECK(kos_tpm_parse_response(resp, len, true, &rc, &p, &n) == -EBADMSG);
}

TEST(tpm_parses_create_response_and_rejects_broken_ones) {
        static uint8_t resp[4096], priv[KOS_TPM_BLOB_MAX], pub[KOS_TPM_BLOB_MAX], copy[4096];
        const uint8_t *p;
        size_t n;
        uint32_t rc;
        uint16_t priv_len, pub_len;
        CHECK(kos_tpm_parse_response(resp, unhex(RESP_CREATE, resp, sizeof resp), true, &rc, &p, &n) == 0);
        CHECK(kos_tpm_parse_create(p, n, priv, &priv_len, pub, &pub_len) == 0);
        CHECK(pub[0] == 0x00 && pub[1] == 0x08); /* KEYEDHASH */
        memcpy(copy, p, n);
        copy[n] = 0;
        CHECK(kos_tpm_parse_create(copy, n + 1, priv, &priv_len, pub, &pub_len) == -EBADMSG); /* trailing byte */
        CHECK(kos_tpm_parse_create(copy, n - 1, priv, &priv_len, pub, &pub_len) == -EBADMSG); /* cut short */
        copy[0] = 0x02, copy[1] = 0x01; /* a private area larger than KOS_TPM_BLOB_MAX */
        CHECK(kos_tpm_parse_create(copy, n, priv, &priv_len, pub, &pub_len) == -EBADMSG);
        copy[0] = 0, copy[1] = 0; /* an empty private area */
        CHECK(kos_tpm_parse_create(copy, n, priv, &priv_len, pub, &pub_len) == -EBADMSG);
}

TEST(tpm_parses_load_and_start_auth_session_responses) {
        static uint8_t resp[4096];
        const uint8_t *p;
        size_t len, n;
        uint32_t rc, handle;
        len = unhex(RESP_LOAD, resp, sizeof resp);
        CHECK(kos_tpm_parse_response_handle(resp, len, true, &rc, &handle, &p, &n) == 0 && handle == 0x80000001);
        CHECK(kos_tpm_parse_load(p, n) == 0 && kos_tpm_parse_load(p, n - 1) == -EBADMSG);
        len = unhex(RESP_START_AUTH_SESSION, resp, sizeof resp);
        CHECK(kos_tpm_parse_response_handle(resp, len, false, &rc, &handle, &p, &n) == 0 && handle == 0x03000000);
        CHECK(kos_tpm_parse_start_auth_session(p, n) == 0);
        /* a nonceTPM shorter than 16 bytes */
        CHECK(kos_tpm_parse_start_auth_session((const uint8_t *)"\x00\x0f" "0123456789abcde", 17) == -EBADMSG);
        /* the handle cut off */
        CHECK(kos_tpm_parse_response_handle(resp, 12, false, &rc, &handle, &p, &n) == -EBADMSG);
}

TEST(tpm_parses_unseal_response_and_names_a_policy_failure) {
        static uint8_t resp[4096];
        uint8_t data[KOS_TPM_SEAL_DATA_MAX];
        const uint8_t *p;
        size_t n, len;
        uint32_t rc;
        char buf[32];
        CHECK(kos_tpm_parse_response(resp, unhex(RESP_UNSEAL, resp, sizeof resp), true, &rc, &p, &n) == 0 && rc == 0);
        CHECK(kos_tpm_parse_unseal(p, n, data, &len) == 0 && len == 16 && data[0] == 0x4b && data[15] == 0x4b);
        CHECK(kos_tpm_parse_unseal(p, n + 1, data, &len) == -EBADMSG);
        /* more than 128 bytes of sealed data */
        CHECK(kos_tpm_parse_unseal((const uint8_t *)"\x00\x81", 2, data, &len) == -EBADMSG);
        /* swtpm's answer to Unseal before the marker: session 1, TPM_RC_POLICY_FAIL */
        CHECK(kos_tpm_parse_response(resp, unhex("80010000000a0000099d", resp, sizeof resp), true, &rc, &p, &n) == 0);
        CHECK(rc == 0x99d && strcmp(kos_tpm_rc_name(rc, buf, sizeof buf), "TPM_RC_POLICY_FAIL") == 0);
        CHECK(strcmp(kos_tpm_rc_name(0x9a0, buf, sizeof buf), "TPM_RC_0x9a0") == 0);
}

TEST(tpm_policy_pcr_digest_and_marker_match_golden_values) {
        uint8_t values[24][32] = {{0}}, digest[32], want[32];
        CHECK(kos_tpm_seal_pcr_expected(values[15]) == 0);
        unhex(GOLDEN_MARKER_PCR, want, sizeof want);
        CHECK(memcmp(values[15], want, 32) == 0);
        CHECK(kos_tpm_policy_pcr_digest(1u << 15, values, digest) == 0);
        unhex(GOLDEN_POLICY_15, want, sizeof want);
        CHECK(memcmp(digest, want, 32) == 0);
        memset(values[7], 0xaa, 32);
        CHECK(kos_tpm_policy_pcr_digest(1u << 7 | 1u << 15, values, digest) == 0);
        unhex(GOLDEN_POLICY_7_15, want, sizeof want);
        CHECK(memcmp(digest, want, 32) == 0);
        CHECK(kos_tpm_policy_pcr_digest(0, values, digest) == -EINVAL);
}

static int sealed_file(uint32_t mask, uint8_t *buf, size_t size) {
        struct kos_sealed_key k = {.pcr_mask = mask, .public_len = 3, .private_len = 2};
        memset(k.pcr_values[15], 0x15, 32);
        memset(k.pcr_values[7], 0x07, 32);
        memcpy(k.public_area, "pub", 3);
        memcpy(k.private_area, "pr", 2);
        return kos_sealed_key_format(&k, buf, size);
}

TEST(sealed_key_file_round_trips_and_each_rule_rejects) {
        uint8_t buf[KOS_SEALED_KEY_MAX];
        struct kos_sealed_key k;
        int n = sealed_file(1u << 7 | 1u << 15, buf, sizeof buf);
        CHECK(n == 8 + 4 + 64 + 2 + 3 + 2 + 2);
        CHECK(memcmp(buf, "KOSSEAL1" "\x00\x00\x80\x80", 12) == 0);
        CHECK(kos_sealed_key_parse(buf, (size_t)n, &k) == 0);
        CHECK(k.pcr_mask == (1u << 7 | 1u << 15) && k.pcr_values[7][0] == 0x07 && k.pcr_values[15][31] == 0x15);
        CHECK(k.public_len == 3 && memcmp(k.public_area, "pub", 3) == 0 && k.private_len == 2);
        CHECK(kos_sealed_key_parse(buf, (size_t)n - 1, &k) == -EBADMSG); /* cut short */
        buf[n] = 0;
        CHECK(kos_sealed_key_parse(buf, (size_t)n + 1, &k) == -EBADMSG); /* trailing byte */
        buf[0] = 'X';
        CHECK(kos_sealed_key_parse(buf, (size_t)n, &k) == -EBADMSG); /* magic */
        n = sealed_file(1u << 7, buf, sizeof buf); /* no PCR 15: would open after the leave event */
        CHECK(n > 0 && kos_sealed_key_parse(buf, (size_t)n, &k) == -EBADMSG);
        n = sealed_file(1u << 15, buf, sizeof buf);
        buf[8] = 0x01; /* PCR 24 */
        CHECK(kos_sealed_key_parse(buf, (size_t)n, &k) == -EBADMSG);
        n = sealed_file(1u << 15, buf, sizeof buf);
        buf[8 + 4 + 32] = 0x02, buf[8 + 4 + 32 + 1] = 0x01; /* a public area over KOS_TPM_BLOB_MAX */
        CHECK(kos_sealed_key_parse(buf, (size_t)n, &k) == -EBADMSG);
        buf[8 + 4 + 32] = 0, buf[8 + 4 + 32 + 1] = 0; /* an empty public area */
        CHECK(kos_sealed_key_parse(buf, (size_t)n, &k) == -EBADMSG);
        CHECK(sealed_file(1u << 15, buf, 20) == -ENOBUFS);
}

TEST(tpm_pcr_lists_name_each_pcr_once) {
        uint32_t mask;
        CHECK(kos_tpm_parse_pcr_list("7,15", &mask) == 0 && mask == (1u << 7 | 1u << 15));
        CHECK(kos_tpm_parse_pcr_list("15", &mask) == 0 && mask == 1u << 15);
        CHECK(kos_tpm_parse_pcr_list("23,0", &mask) == 0 && mask == (1u << 23 | 1u));
        const char *bad[] = {"", "15,15", "24", "15,", ",15", "x", "-1", "7;15", "1 5"};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                CHECK(kos_tpm_parse_pcr_list(bad[i], &mask) == -EINVAL);
}
