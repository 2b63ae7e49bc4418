/* SPDX-License-Identifier: MIT */
/* A signing key named on the command line: a PEM secret key file or a
 * PKCS#11 URI (a key in an HSM). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "keyring.h"

/* Signs the exact bytes with key. pkcs11_module is --pkcs11-module or NULL.
 * Prints why it failed (never the PIN) and returns an exit code. */
int signing_key_sign(const char *key, const char *pkcs11_module, const void *message, size_t len,
                     uint8_t ret_signature[static KOS_ED25519_SIGNATURE_LEN], uint8_t ret_id[static KOS_KEY_ID_LEN]);
/* The raw public key of a PKCS#11 URI's key. Prints why it failed; returns an exit code. */
int signing_key_public_pkcs11(const char *uri, const char *pkcs11_module, uint8_t ret_raw[static KOS_ED25519_PUBLIC_LEN]);
int cmd_key_export_public(int argc, char **argv);
