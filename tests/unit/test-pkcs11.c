/* SPDX-License-Identifier: MIT */
/* PKCS#11 URIs (RFC 7512) and CKA_EC_POINT: one test per rule. The token
 * itself is exercised by tests/host/test-hsm.sh against SoftHSM2. */
#include <string.h>

#include "pkcs11-sign.h"
#include "test.h"
#include "util.h"

/* The message into a plain buffer, so each test reads it as a user would. */
static int parse(const char *uri, struct kos_pkcs11_uri *u, char *error, size_t size) {
        struct kos_error e = KOS_ERROR_NULL;
        int r = kos_pkcs11_uri_parse(uri, u, &e);
        size_t n = strnlen(e.msg, size - 1);

        memcpy(error, e.msg, n);
        error[n] = '\0';
        return r;
}

static bool rejected(const char *uri) {
        struct kos_pkcs11_uri u;
        char error[256] = "";
        int r = parse(uri, &u, error, sizeof error);
        return r == -EINVAL && error[0];
}

TEST(pkcs11_uri_parses_path_and_query_attributes) {
        struct kos_pkcs11_uri u;
        char error[256];

        CHECK(parse("pkcs11:token=kos;object=signer;id=%01%ff;serial=abc;type=private"
                    "?pin-source=file:/run/pin&module-path=/usr/lib/softhsm/libsofthsm2.so",
                    &u, error, sizeof error) == 0);
        CHECK(u.has_token && strcmp(u.token, "kos") == 0);
        CHECK(u.has_object && strcmp(u.object, "signer") == 0);
        CHECK(u.has_id && u.id_len == 2 && u.id[0] == 0x01 && u.id[1] == 0xff);
        CHECK(u.has_serial && strcmp(u.serial, "abc") == 0);
        CHECK(u.want_private && !u.want_public);
        CHECK(u.has_pin_source && strcmp(u.pin_source, "file:/run/pin") == 0);
        CHECK(!u.has_pin_value);
        CHECK(u.has_module_path && strcmp(u.module_path, "/usr/lib/softhsm/libsofthsm2.so") == 0);
}

TEST(pkcs11_uri_accepts_an_empty_path) {
        struct kos_pkcs11_uri u;
        char error[256];

        CHECK(parse("pkcs11:", &u, error, sizeof error) == 0);
        CHECK(!u.has_token && !u.has_object && !u.has_id);
        CHECK(parse("pkcs11:?pin-value=1", &u, error, sizeof error) == 0);
        CHECK(u.has_pin_value && strcmp(u.pin_value, "1") == 0);
}

TEST(pkcs11_uri_percent_decodes_values) {
        struct kos_pkcs11_uri u;
        char error[256];

        CHECK(parse("pkcs11:token=My%20Token;object=a%3bb%3Dc?pin-value=%26%3f", &u, error, sizeof error) == 0);
        CHECK(strcmp(u.token, "My Token") == 0);
        CHECK(strcmp(u.object, "a;b=c") == 0);
        CHECK(strcmp(u.pin_value, "&?") == 0);
}

TEST(pkcs11_uri_rejects_bad_percent_escapes) {
        CHECK(rejected("pkcs11:object=%"));
        CHECK(rejected("pkcs11:object=%4"));
        CHECK(rejected("pkcs11:object=%zz"));
        CHECK(rejected("pkcs11:object=a%g1"));
        CHECK(rejected("pkcs11:id=%0"));
}

TEST(pkcs11_uri_rejects_nul_in_strings_but_not_in_id) {
        struct kos_pkcs11_uri u;
        char error[256];

        CHECK(rejected("pkcs11:object=a%00b"));
        CHECK(rejected("pkcs11:token=%00"));
        CHECK(parse("pkcs11:id=%00%00", &u, error, sizeof error) == 0);
        CHECK(u.id_len == 2 && u.id[0] == 0 && u.id[1] == 0);
}

TEST(pkcs11_uri_rejects_raw_spaces_and_control_characters) {
        CHECK(rejected("pkcs11:object=a b"));
        CHECK(rejected("pkcs11:object=a\tb"));
        CHECK(rejected("pkcs11:object=\x7f"));
        CHECK(rejected("pkcs11:object=\xc3\xa9"));
}

TEST(pkcs11_uri_rejects_unknown_and_unsupported_attributes) {
        CHECK(rejected("pkcs11:token=kos;frobnicate=1"));
        CHECK(rejected("pkcs11:token=kos;x-vendor=1"));
        CHECK(rejected("pkcs11:token=kos?frobnicate=1"));
        CHECK(rejected("pkcs11:token=kos;slot-id=1"));
        CHECK(rejected("pkcs11:token=kos;manufacturer=SoftHSM"));
        CHECK(rejected("pkcs11:token=kos?module-name=softhsm2"));
        CHECK(rejected("pkcs11:type=cert"));
        CHECK(rejected("pkcs11:type=secret-key"));
}

TEST(pkcs11_uri_rejects_attribute_in_the_wrong_part) {
        CHECK(rejected("pkcs11:token=kos;pin-value=1234"));
        CHECK(rejected("pkcs11:token=kos;module-path=/x.so"));
        CHECK(rejected("pkcs11:?token=kos"));
        CHECK(rejected("pkcs11:?object=signer"));
}

TEST(pkcs11_uri_rejects_repeated_attributes) {
        CHECK(rejected("pkcs11:token=a;token=b"));
        CHECK(rejected("pkcs11:object=a;object=a"));
        CHECK(rejected("pkcs11:?pin-value=1&pin-value=1"));
        CHECK(rejected("pkcs11:?pin-value=1&pin-source=/p"));
}

TEST(pkcs11_uri_rejects_malformed_structure) {
        CHECK(rejected("PKCS11:token"));
        CHECK(rejected("pkcs11-token=kos"));
        CHECK(rejected("file:/key.pem"));
        CHECK(rejected(""));
        CHECK(rejected("pkcs11:token"));
        CHECK(rejected("pkcs11:token=kos;"));
        CHECK(rejected("pkcs11:;token=kos"));
        CHECK(rejected("pkcs11:token=kos?"));
        CHECK(rejected("pkcs11:token=kos?pin-value=1&"));
        CHECK(rejected("pkcs11:id="));
        CHECK(rejected("pkcs11:=kos"));
}

TEST(pkcs11_uri_rejects_values_longer_than_their_fields) {
        char uri[KOS_PKCS11_URI_MAX + 64];
        struct kos_pkcs11_uri u;
        char error[256];

        /* A token label is at most 32 bytes (CK_TOKEN_INFO.label). */
        snprintf(uri, sizeof uri, "pkcs11:token=%s", "0123456789abcdef0123456789abcdef");
        CHECK(parse(uri, &u, error, sizeof error) == 0);
        snprintf(uri, sizeof uri, "pkcs11:token=%s", "0123456789abcdef0123456789abcdefX");
        CHECK(rejected(uri));
        /* The whole URI is capped. */
        memcpy(uri, "pkcs11:object=", 14);
        memset(uri + 14, 'a', sizeof uri - 15);
        uri[sizeof uri - 1] = '\0';
        CHECK(rejected(uri));
}

TEST(pkcs11_uri_errors_never_contain_the_pin) {
        static const char *const uris[] = {
                "pkcs11:token=kos?pin-value=S3CRET%zz",   "pkcs11:token=kos;pin-value=S3CRET",
                "pkcs11:token=kos?pin-value=S3CRET&pin-value=S3CRET", "pkcs11:S3CRET=1",
                "pkcs11:token=kos?S3CRET", "pkcs11:token=kos?pin-value=S3CRET&pin-source=/S3CRET",
                "pkcs11:token=kos?pin-value=S3CRET&bogus=S3CRET",
        };
        for (size_t i = 0; i < ELEMENTSOF(uris); i++) {
                struct kos_pkcs11_uri u;
                char error[256] = "";
                CHECK(parse(uris[i], &u, error, sizeof error) == -EINVAL);
                CHECK(error[0]);
                CHECK(!strstr(error, "S3CRET"));
                CHECK(!u.has_pin_value && !memchr(u.pin_value, 'S', sizeof u.pin_value));
        }
}

/* RFC 3986 section 3.1: a scheme is case-insensitive. A URI written
 * PKCS11: is a URI, never a file name (whose error message would print it). */
TEST(pkcs11_uri_scheme_is_case_insensitive) {
        struct kos_pkcs11_uri u;
        char error[256];

        CHECK(kos_pkcs11_uri_is("PKCS11:token=kos?pin-value=S3CRET"));
        CHECK(kos_pkcs11_uri_is("Pkcs11:token=kos"));
        CHECK(!kos_pkcs11_uri_is("pkcs1:token=kos") && !kos_pkcs11_uri_is("pkcs11") && !kos_pkcs11_uri_is(NULL));
        CHECK(parse("PKCS11:token=kos;object=signer?pin-value=S3CRET", &u, error, sizeof error) == 0);
        CHECK(u.has_token && strcmp(u.token, "kos") == 0 && strcmp(u.pin_value, "S3CRET") == 0);
        kos_pkcs11_uri_done(&u);
        CHECK(parse("pKcS11:token=kos?pin-value=S3CRET%zz", &u, error, sizeof error) == -EINVAL);
        CHECK(!strstr(error, "S3CRET"));
}

/* What a message may show of a --key argument that is not a URI kos could
 * parse: every pin-value's value hidden, whatever the case. */
TEST(redact_pin_values_hides_every_pin_value) {
        char out[128];

        kos_redact_pin_values("pkcs:token=kos?pin-value=S3CRET", out, sizeof out);
        CHECK(strcmp(out, "pkcs:token=kos?pin-value=***") == 0);
        kos_redact_pin_values("x;PIN-VALUE=S3CRET;object=a&pin-value=S3CRET&b=1", out, sizeof out);
        CHECK(strcmp(out, "x;PIN-VALUE=***;object=a&pin-value=***&b=1") == 0);
        kos_redact_pin_values("keys/secret.pem", out, sizeof out);
        CHECK(strcmp(out, "keys/secret.pem") == 0);
        kos_redact_pin_values("a?pin-value=S3CRET", out, 8);
        CHECK(!strstr(out, "S3") && strlen(out) < 8);
}

TEST(pkcs11_uri_describe_and_done_leave_no_pin) {
        struct kos_pkcs11_uri u;
        char error[256], text[512];

        CHECK(parse("pkcs11:token=kos;object=signer;id=%01?pin-value=S3CRET", &u, error, sizeof error) == 0);
        kos_pkcs11_uri_describe(&u, text, sizeof text);
        CHECK(strcmp(text, "token 'kos', object 'signer', id 01") == 0);
        kos_pkcs11_uri_done(&u);
        CHECK(!u.has_pin_value && !memchr(u.pin_value, 'S', sizeof u.pin_value));
}

TEST(pkcs11_module_comes_from_uri_then_option_then_environment) {
        struct kos_pkcs11_uri u;
        char error[256];

        setenv("KOS_PKCS11_MODULE", "/env.so", 1);
        CHECK(parse("pkcs11:?module-path=/uri.so", &u, error, sizeof error) == 0);
        CHECK(strcmp(kos_pkcs11_module_choose(&u, "/option.so"), "/uri.so") == 0);
        CHECK(parse("pkcs11:", &u, error, sizeof error) == 0);
        CHECK(strcmp(kos_pkcs11_module_choose(&u, "/option.so"), "/option.so") == 0);
        CHECK(strcmp(kos_pkcs11_module_choose(&u, NULL), "/env.so") == 0);
        unsetenv("KOS_PKCS11_MODULE");
}

/* CKA_EC_POINT of a key pair SoftHSM 2.6.1 generated (pkcs11-tool
 * --keypairgen --key-type EC:edwards25519), and its key id. */
static const char softhsm_ec_point[] = "04204e8e1a9cc06892bce149a29446afbd254515d2f3da31ead979c68f88e6e8cd0e";
static const char softhsm_key_id[] = "ebb4e8ee54ffefba";

TEST(ec_point_accepts_der_octet_string_of_32_bytes) {
        uint8_t point[34], raw[KOS_ED25519_PUBLIC_LEN], id[KOS_KEY_ID_LEN];
        char hex[KOS_KEY_ID_HEX_LEN + 1];

        CHECK(kos_hex_decode(softhsm_ec_point, strlen(softhsm_ec_point), point, sizeof point) == 0);
        CHECK(kos_pkcs11_ec_point_parse(point, sizeof point, raw) == 0);
        CHECK(memcmp(raw, point + 2, 32) == 0);
        CHECK(kos_key_id_of(raw, id) == 0);
        kos_hex_encode(id, KOS_KEY_ID_LEN, hex);
        CHECK(strcmp(hex, softhsm_key_id) == 0);
}

TEST(ec_point_rejects_anything_but_exactly_04_20_and_32_bytes) {
        uint8_t point[64] = {0x04, 0x20}, raw[KOS_ED25519_PUBLIC_LEN];

        CHECK(kos_pkcs11_ec_point_parse(point, 34, raw) == 0);
        CHECK(kos_pkcs11_ec_point_parse(point, 33, raw) == -EBADMSG);  /* short */
        CHECK(kos_pkcs11_ec_point_parse(point, 35, raw) == -EBADMSG);  /* trailing byte */
        CHECK(kos_pkcs11_ec_point_parse(point, 32, raw) == -EBADMSG);  /* raw key without DER */
        CHECK(kos_pkcs11_ec_point_parse(point, 0, raw) == -EBADMSG);
        point[0] = 0x03; /* BIT STRING */
        CHECK(kos_pkcs11_ec_point_parse(point, 34, raw) == -EBADMSG);
        point[0] = 0x04, point[1] = 0x21; /* 33-byte content */
        CHECK(kos_pkcs11_ec_point_parse(point, 35, raw) == -EBADMSG);
        point[1] = 0x39; /* Ed448: 57 bytes */
        CHECK(kos_pkcs11_ec_point_parse(point, 59, raw) == -EBADMSG);
        uint8_t long_form[35] = {0x04, 0x81, 0x20}; /* non-minimal DER length */
        CHECK(kos_pkcs11_ec_point_parse(long_form, sizeof long_form, raw) == -EBADMSG);
}
