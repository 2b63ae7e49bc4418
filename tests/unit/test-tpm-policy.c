/* SPDX-License-Identifier: MIT */
/* Signed policies and salted sessions (lib/system/tpm-policy.c,
 * tpm-session.c) against values computed independently with Python
 * (hashlib, hmac, and the cryptography package's AES-CFB), the files broken
 * one rule at a time, and an encrypted Unseal exchange: neither its command
 * nor its response carries the key, while the old unsalted exchange
 * (test-tpm-seal.c's swtpm recording) does. */
#include <string.h>

#include "test.h"
#include "tpm-policy.h"
#include "tpm-session.h"

/* KDFa(32 x 0x11, "ATH", 32 x 0x22, 32 x 0x33, 256) and ("CFB", 384);
 * KDFe(32 x 0x44, "SECRET", 32 x 0x22, 32 x 0x33). */
#define GOLDEN_KDFA "89ce7c70f7dd5795dc8e5df545a5db329da890e5d723bdf66a363669ddf8c696"
#define GOLDEN_KDFA_48 \
        "a5d00983f2a8570dbdeb09d01f0957c964b744ab4ad2c1b961f0dbd4abf266f949b3121dd5d4d1fdde25ee401bcdcaab"
#define GOLDEN_KDFE "50a2b16d929d65d27abd23367caf147c4eeb2afe7bf7c235a957b0c65e757201"
/* The P-256 generator G as a policy key: its TPM name, and
 * H(H(0^32 || 0000016a || name) || "kos-sealed-key/1"). */
#define G_X "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
#define G_Y "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
#define GOLDEN_NAME_G "000ba80824ed300e2c50ef18163e5c753c9c9e62238853c7c22cc46c3333eaac6b25"
#define GOLDEN_AUTHORIZE_G "d6f2b860a98b25e94a417d9cbb66f5c29697a6468ed7ae972d2514d37fc601a4"
/* SHA-256(0^32 || SHA-256("kos-bk-security-version=3")) */
#define GOLDEN_PCR14_V3 "e6e7213a4d6afc1b5edb7967962f0c9141046c5495c501c7a197453975bb607b"
/* The Unseal of item 0x80000001 (named GOLDEN_NAME_G) in session 0x03000000
 * with sessionKey 00 01 .. 1f, nonceCaller c0..cf c0..cf, nonceTPM 70..7f
 * 70..7f; the response encrypts 16 x 0x4b. */
#define CMD_UNSEAL_SALTED \
        "80020000005b0000015e8000000100000049030000000020c0c1c2c3c4c5c6c7c8c9cacbcccdcecfc0c1c2c3c4c5c6c7" \
        "c8c9cacbcccdcecf400020b89af90c40511bd4bac0c5e9fac60bb4f821db0965cf892187b634845e69a89e"
#define RESP_UNSEAL_SALTED \
        "80020000006500000000000000120010a5908d37292865dfe97a0e09ac2faf1d0020707172737475767778797a7b7c7d" \
        "7e7f707172737475767778797a7b7c7d7e7f40002093304a49c0be990aa6065012dd136f89d21602c6eb83c608de0e9d" \
        "ec96274a4a"
/* test-tpm-seal.c's recording of swtpm's answer to the unsalted Unseal of 16 x 0x4b. */
#define RESP_UNSEAL_CLEAR \
        "800200000035000000000000001200104b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b0010383f37cecc959c7c17545f364ced" \
        "40e0000000"

static size_t from_hex(const char *hex, uint8_t *out, size_t size) {
        size_t n = strlen(hex) / 2;
        return n <= size && kos_hex_decode(hex, 2 * n, out, n) == 0 ? n : 0;
}

static int equals_hex(const uint8_t *got, size_t len, const char *hex) {
        uint8_t want[128];
        return from_hex(hex, want, sizeof want) == len && memcmp(got, want, len) == 0;
}

static void point_g(struct kos_tpm_ecc_point *p) {
        (void)from_hex(G_X, p->x, 32);
        (void)from_hex(G_Y, p->y, 32);
}

static void fill(uint8_t *p, uint8_t v, size_t n) { memset(p, v, n); }

TEST(tpm_kdfa_and_kdfe_match_part_1_as_python_computes_them) {
        uint8_t k[32], u[32], v[32], z[32], out[48];
        fill(k, 0x11, 32), fill(u, 0x22, 32), fill(v, 0x33, 32), fill(z, 0x44, 32);
        CHECK(kos_tpm_kdfa(k, 32, "ATH", u, 32, v, 32, out, 32) == 0 && equals_hex(out, 32, GOLDEN_KDFA));
        CHECK(kos_tpm_kdfa(k, 32, "CFB", u, 32, v, 32, out, 48) == 0 && equals_hex(out, 48, GOLDEN_KDFA_48));
        CHECK(kos_tpm_kdfe(z, "SECRET", u, v, out) == 0 && equals_hex(out, 32, GOLDEN_KDFE));
        CHECK(kos_tpm_kdfa(k, 32, "ATH", u, 32, v, 32, out, 0) == -EINVAL);
}

TEST(tpm_policy_key_name_and_authorize_digest_match_python) {
        struct kos_tpm_ecc_point g;
        uint8_t name[KOS_TPM_NAME_LEN], digest[KOS_SHA256_LEN], v[KOS_SHA256_LEN];
        point_g(&g);
        CHECK(kos_tpm_policy_key_name(&g, name) == 0 && equals_hex(name, sizeof name, GOLDEN_NAME_G));
        CHECK(kos_tpm_authorize_policy_digest(name, digest) == 0 && equals_hex(digest, 32, GOLDEN_AUTHORIZE_G));
        CHECK(kos_tpm_bk_version_pcr(3, v) == 0 && equals_hex(v, 32, GOLDEN_PCR14_V3));
}

TEST(tpm_builds_load_external_of_the_policy_key_in_the_owner_hierarchy) {
        struct kos_tpm_ecc_point g;
        uint8_t b[256];
        point_g(&g);
        int n = kos_tpm_build_load_external(b, sizeof b, &g);
        CHECK(n == 10 + 2 + 2 + 88 + 4);
        CHECK(equals_hex(b, 16, "80010000006a000001670000" "0058" "0023"));
        CHECK(equals_hex(b + n - 4, 4, "40000001"));
        CHECK(kos_tpm_build_load_external(b, 50, &g) == -ENOBUFS);
}

TEST(tpm_salted_unseal_command_and_response_carry_no_plaintext_key) {
        struct kos_tpm_session s = {.handle = 0x03000000};
        uint8_t nonce[32], name[KOS_TPM_NAME_LEN], cmd[256], resp[256], data[KOS_TPM_SEAL_DATA_MAX], key[16];
        size_t len = 0;
        for (unsigned i = 0; i < 32; i++)
                s.key[i] = (uint8_t)i, s.nonce_tpm[i] = (uint8_t)(0x70 + i % 16), nonce[i] = (uint8_t)(0xc0 + i % 16);
        fill(key, 0x4b, sizeof key);
        CHECK(from_hex(GOLDEN_NAME_G, name, sizeof name) == sizeof name);
        int n = kos_tpm_build_unseal_encrypted(cmd, sizeof cmd, 0x80000001, name, &s, nonce);
        CHECK(n > 0 && equals_hex(cmd, (size_t)n, CMD_UNSEAL_SALTED));
        size_t rn = from_hex(RESP_UNSEAL_SALTED, resp, sizeof resp);
        CHECK(kos_tpm_open_unseal_response(resp, rn, &s, nonce, data, &len) == 0);
        CHECK(len == sizeof key && memcmp(data, key, sizeof key) == 0);
        /* Not the key, nor any 4 bytes of it, in either direction... */
        CHECK(!memmem(cmd, (size_t)n, key, 4) && !memmem(resp, rn, key, 4));
        /* ...while the unsalted exchange carries it whole. */
        size_t cn = from_hex(RESP_UNSEAL_CLEAR, resp, sizeof resp);
        CHECK(memmem(resp, cn, key, sizeof key) != NULL);
}

TEST(tpm_salted_unseal_response_is_refused_unless_its_hmac_is_the_tpms) {
        struct kos_tpm_session s = {.handle = 0x03000000};
        uint8_t nonce[32], resp[256], data[KOS_TPM_SEAL_DATA_MAX];
        size_t len;
        for (unsigned i = 0; i < 32; i++)
                s.key[i] = (uint8_t)i, s.nonce_tpm[i] = (uint8_t)(0x70 + i % 16), nonce[i] = (uint8_t)(0xc0 + i % 16);
        size_t rn = from_hex(RESP_UNSEAL_SALTED, resp, sizeof resp);
        CHECK(rn == 0x65);
        /* A ciphertext byte, a nonce byte, the attributes, the HMAC: each changed. */
        const size_t at[] = {18, 40, 66, 90};
        for (unsigned i = 0; i < sizeof at / sizeof at[0]; i++) {
                resp[at[i]] ^= 1;
                CHECK(kos_tpm_open_unseal_response(resp, rn, &s, nonce, data, &len) == -EBADMSG);
                resp[at[i]] ^= 1;
        }
        /* Another session key (a TPM that is not the recorded one). */
        s.key[0] ^= 1;
        CHECK(kos_tpm_open_unseal_response(resp, rn, &s, nonce, data, &len) == -EBADMSG);
        s.key[0] ^= 1;
        /* The shape: one byte more or less, an error code. */
        CHECK(kos_tpm_open_unseal_response(resp, rn - 1, &s, nonce, data, &len) == -EBADMSG);
        resp[9] = 1;
        CHECK(kos_tpm_open_unseal_response(resp, rn, &s, nonce, data, &len) == -EBADMSG);
        resp[9] = 0;
        CHECK(kos_tpm_open_unseal_response(resp, rn, &s, nonce, data, &len) == 0);
}

static int policy_fixture(uint8_t *buf, size_t size, unsigned entries) {
        struct kos_signed_policy p = {.n = entries}; /* more than 8: format must refuse it */
        for (unsigned e = 0; e < entries && e < KOS_SIGNED_POLICY_MAX_ENTRIES; e++) {
                p.entries[e].pcr_mask = 1u << 7 | 1u << 14 | 1u << 15;
                fill(p.entries[e].pcr_values[7], (uint8_t)e, 32);
                fill(p.entries[e].r, 0x72, 32), fill(p.entries[e].s, 0x73, 32);
        }
        return kos_signed_policy_format(&p, buf, size);
}

TEST(signed_policy_file_is_parsed_exactly_and_broken_files_are_refused) {
        static uint8_t b[KOS_SIGNED_POLICY_MAX + 16];
        struct kos_signed_policy p;
        int n = policy_fixture(b, sizeof b, 2);
        CHECK(n == 8 + 1 + 2 * (4 + 3 * 32 + 64));
        CHECK(kos_signed_policy_parse(b, (size_t)n, &p) == 0 && p.n == 2 && p.entries[1].pcr_values[7][0] == 1);
        CHECK(kos_signed_policy_parse(b, (size_t)n - 1, &p) == -EBADMSG);    /* cut */
        b[n] = 0;
        CHECK(kos_signed_policy_parse(b, (size_t)n + 1, &p) == -EBADMSG);    /* a byte after */
        b[8] = 0;
        CHECK(kos_signed_policy_parse(b, (size_t)n, &p) == -EBADMSG);        /* no entry */
        b[8] = 9;
        CHECK(kos_signed_policy_parse(b, (size_t)n, &p) == -EBADMSG);        /* more than 8 */
        b[8] = 2, b[9] = 1;
        CHECK(kos_signed_policy_parse(b, (size_t)n, &p) == -EBADMSG);        /* PCR 24 and up */
        b[9] = 0, b[0] = 'X';
        CHECK(kos_signed_policy_parse(b, (size_t)n, &p) == -EBADMSG);        /* magic */
        b[0] = 'K';
        CHECK(kos_signed_policy_parse(b, (size_t)n, &p) == 0);
        CHECK(policy_fixture(b, sizeof b, 9) == -EINVAL);
        CHECK(policy_fixture(b, 100, 1) == -ENOBUFS);
}

TEST(authorized_sealed_key_file_is_parsed_exactly_and_broken_files_are_refused) {
        struct kos_authorized_key k = {.public_len = 3, .private_len = 2}, back;
        uint8_t b[KOS_AUTHORIZED_KEY_MAX + 1];
        CHECK(from_hex(GOLDEN_NAME_G, k.policy_key_name, KOS_TPM_NAME_LEN) == KOS_TPM_NAME_LEN);
        point_g(&k.storage_key);
        memcpy(k.public_area, "pub", 3), memcpy(k.private_area, "pr", 2);
        int n = kos_authorized_key_format(&k, b, sizeof b);
        CHECK(n == 8 + 34 + 64 + 2 + 3 + 2 + 2);
        CHECK(kos_authorized_key_parse(b, (size_t)n, &back) == 0 && memcmp(&back, &k, sizeof k) == 0);
        CHECK(kos_authorized_key_parse(b, (size_t)n - 1, &back) == -EBADMSG);
        b[n] = 0;
        CHECK(kos_authorized_key_parse(b, (size_t)n + 1, &back) == -EBADMSG);
        b[9] = 0x04; /* a name of another hash */
        CHECK(kos_authorized_key_parse(b, (size_t)n, &back) == -EBADMSG);
        b[9] = 0x0b, b[106] = 0, b[107] = 0; /* an empty public area */
        CHECK(kos_authorized_key_parse(b, (size_t)n, &back) == -EBADMSG);
        b[107] = 3, memcpy(b, "KOSSEAL1", 8);
        CHECK(kos_authorized_key_parse(b, (size_t)n, &back) == -EBADMSG);
}

TEST(storage_key_public_is_exactly_the_kos_template_with_a_32_byte_point) {
        /* ReadPublic's parameters: swtpm's outPublic for the template
         * (test-tpm-seal.c's CreatePrimary recording), then the name twice. */
        static const char golden[] =
                "005a0023000b000304720000000600800043001000030010002022609657600f21e0145e03d32563e3045de495dae439c62a"
                "8156849dfc0ac3a00020420e94219881b48f432017c41db317c563272ace2b8fda6083d7ea8add8ba677"
                "0022000b2936ea9e501c3a5dcc64aa1eb63596e6d85f746f07e2d4dc071cf663fbf43618"
                "0022000b2936ea9e501c3a5dcc64aa1eb63596e6d85f746f07e2d4dc071cf663fbf43618";
        uint8_t b[256];
        struct kos_tpm_ecc_point p;
        size_t n = from_hex(golden, b, sizeof b);
        CHECK(n == 2 + 0x5a + 2 * 36);
        CHECK(kos_tpm_parse_storage_key_public(b, n, &p) == 0);
        CHECK(equals_hex(p.x, 32, "22609657600f21e0145e03d32563e3045de495dae439c62a8156849dfc0ac3a0"));
        CHECK(kos_tpm_parse_storage_key_public(b, n - 1, &p) == -EBADMSG);
        b[7] ^= 0x40; /* attributes: not the storage template */
        CHECK(kos_tpm_parse_storage_key_public(b, n, &p) == -EBADMSG);
}
