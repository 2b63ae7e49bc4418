/* SPDX-License-Identifier: MIT */
/* Host-side only: Ed25519 signing keys held in a PKCS#11 token (an HSM),
 * named by a PKCS#11 URI (RFC 7512). The module is loaded with dlopen() and
 * driven directly (C_Sign with CKM_EDDSA): Debian 12's libp11 0.4.12 engine
 * cannot use Ed25519 keys (docs/trust-chain.md, "Signing keys in an HSM").
 *
 * Nothing of the Boot Kernel or System Kernel calls this file; they link
 * libkos.a with --gc-sections, so its object is never pulled into them. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kos-error.h"
#include "keyring.h"

#define KOS_PKCS11_URI_MAX 4096
#define KOS_PKCS11_LABEL_MAX 32  /* CK_TOKEN_INFO.label is 32 bytes */
#define KOS_PKCS11_OBJECT_MAX 256
#define KOS_PKCS11_ID_MAX 128
#define KOS_PKCS11_PIN_MAX 256
#define KOS_PKCS11_PATH_MAX 4096

/* The attributes of a PKCS#11 URI that kos uses, percent-decoded. Holds the
 * PIN when the URI carries pin-value: clear it with kos_pkcs11_uri_done(). */
struct kos_pkcs11_uri {
        bool has_token, has_object, has_id, has_pin_value, has_pin_source, has_module_path, has_serial;
        bool want_private, want_public; /* type=private|public; neither: both kinds are searched */
        char token[KOS_PKCS11_LABEL_MAX + 1];
        char serial[16 + 1];
        char object[KOS_PKCS11_OBJECT_MAX + 1];
        uint8_t id[KOS_PKCS11_ID_MAX];
        size_t id_len;
        char pin_value[KOS_PKCS11_PIN_MAX + 1];
        char pin_source[KOS_PKCS11_PATH_MAX + 1];
        char module_path[KOS_PKCS11_PATH_MAX + 1];
};

/* True when key names a PKCS#11 object rather than a file: it starts with
 * the scheme pkcs11:, in any case. */
bool kos_pkcs11_uri_is(const char *key);

/* Parses a PKCS#11 URI strictly: every %XX escape must be two hex digits, no
 * attribute may repeat, and an attribute kos does not know is refused (in
 * the path it would widen what the URI matches, RFC 7512 section 3.3; in the
 * query it would be silently dropped). Error messages never contain the PIN.
 * Returns 0 or -EINVAL with a message. */
int kos_pkcs11_uri_parse(const char *uri, struct kos_pkcs11_uri *ret, struct kos_error *ret_error);
/* Wipes the PIN. */
void kos_pkcs11_uri_done(struct kos_pkcs11_uri *uri);
/* "token 'kos', object 'signer', id 01": the URI without its PIN, for messages. */
void kos_pkcs11_uri_describe(const struct kos_pkcs11_uri *uri, char *buf, size_t size);

/* The raw Ed25519 public key in the value of CKA_EC_POINT: exactly the DER
 * OCTET STRING 04 20 <32 bytes>. Anything else (a raw 32-byte value, a long
 * length form, trailing bytes) is -EBADMSG. */
int kos_pkcs11_ec_point_parse(const uint8_t *untrusted, size_t len, uint8_t ret_raw[static KOS_ED25519_PUBLIC_LEN]);

/* The module to load: the URI's module-path, else module (from --pkcs11-module),
 * else $KOS_PKCS11_MODULE, else p11-kit's proxy module when installed; NULL
 * when none. */
const char *kos_pkcs11_module_choose(const struct kos_pkcs11_uri *uri, const char *module);

/* Signs message with the token's Ed25519 private key (CKM_EDDSA), checks the
 * signature against the token's public key of the same label/id, and returns
 * both the signature and the key id. Errors: -ELIBBAD module unusable,
 * -ENODEV token not found, -EACCES wrong/locked/missing PIN, -ENOKEY key not
 * found or ambiguous, -EPROTONOSUPPORT not an Ed25519 key, -EOPNOTSUPP the
 * token cannot do CKM_EDDSA, -EIO anything else; always with a message that
 * never contains the PIN. */
int kos_pkcs11_sign(const struct kos_pkcs11_uri *uri, const char *module, const void *message, size_t len,
                    uint8_t ret_signature[static KOS_ED25519_SIGNATURE_LEN], uint8_t ret_id[static KOS_KEY_ID_LEN],
                    struct kos_error *ret_error);

/* The raw public key of the token's Ed25519 key (CKO_PUBLIC_KEY, CKA_EC_POINT).
 * Logs in only when the URI gives a PIN. Errors as kos_pkcs11_sign(). */
int kos_pkcs11_public_key(const struct kos_pkcs11_uri *uri, const char *module,
                          uint8_t ret_raw[static KOS_ED25519_PUBLIC_LEN], struct kos_error *ret_error);
