/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the PKCS#11 URI parser (and the CKA_EC_POINT parser
 * on the same bytes): every decoded string stays within its field and is
 * NUL-terminated, a rejection always says why and leaves no PIN behind, an
 * EC_POINT is accepted only as exactly 04 20 <32 bytes>, and the redacted
 * text shows no pin-value but "***". */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pkcs11-sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const uint8_t zero[KOS_PKCS11_PIN_MAX + 1];
        struct kos_pkcs11_uri u;
        uint8_t raw[KOS_ED25519_PUBLIC_LEN];
        char text[512];
        struct kos_error error = KOS_ERROR_NULL;

        bool point_ok = size == 34 && data[0] == 0x04 && data[1] == 0x20;
        if ((kos_pkcs11_ec_point_parse(data, size, raw) == 0) != point_ok)
                abort();
        if (point_ok && memcmp(raw, data + 2, sizeof raw) != 0)
                abort();

        char *uri = malloc(size + 1);
        if (!uri)
                return 0;
        memcpy(uri, data, size);
        uri[size] = '\0';
        int r = kos_pkcs11_uri_parse(uri, &u, &error);
        if (r < 0) {
                if (r != -EINVAL || !error.msg[0] || memcmp(u.pin_value, zero, sizeof zero) != 0)
                        abort();
        } else {
                if (strnlen(u.token, sizeof u.token) >= sizeof u.token || strnlen(u.object, sizeof u.object) >= sizeof u.object ||
                    strnlen(u.pin_value, sizeof u.pin_value) >= sizeof u.pin_value ||
                    strnlen(u.pin_source, sizeof u.pin_source) >= sizeof u.pin_source ||
                    strnlen(u.module_path, sizeof u.module_path) >= sizeof u.module_path || u.id_len > sizeof u.id ||
                    (u.has_id && u.id_len == 0) || (u.has_pin_value && u.has_pin_source))
                        abort();
                kos_pkcs11_uri_describe(&u, text, sizeof text);
                kos_pkcs11_uri_done(&u);
                if (memcmp(u.pin_value, zero, sizeof zero) != 0)
                        abort();
        }
        /* Redacted: every pin-value= is followed by *** (or the end of a
         * truncated text), nothing else. */
        char shown[64];
        kos_redact_pin_values(uri, shown, sizeof shown);
        if (strlen(shown) >= sizeof shown)
                abort();
        for (const char *p = shown; *p; p++)
                if (strncasecmp(p, "pin-value=", 10) == 0 && strncmp(p + 10, "***", strnlen(p + 10, 3)) != 0)
                        abort();
        free(uri);
        return 0;
}
