/* SPDX-License-Identifier: MIT */
#include "pkcs11-sign.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <p11-kit/pkcs11.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define URI_SCHEME "pkcs11:"
#define MAX_SLOTS 64
#define EC_POINT_MAX 256

/* RFC 3986 section 3.1: schemes are case-insensitive ("PKCS11:" too). */
bool kos_pkcs11_uri_is(const char *key) {
        return key && strncasecmp(key, URI_SCHEME, strlen(URI_SCHEME)) == 0;
}

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Percent-decodes value[0..len) into out (at most cap bytes). Raw bytes
 * must be printable ASCII other than '%' (RFC 7512 pk11-pchar and
 * pk11-qchar are a subset; kos is lenient only about which printable
 * characters need escaping). */
static int percent_decode(const char *value, size_t len, uint8_t *out, size_t cap, size_t *ret_len) {
        size_t n = 0;

        for (size_t i = 0; i < len; i++) {
                uint8_t c = (uint8_t)value[i];
                if (c == '%') {
                        if (len - i < 3)
                                return -EINVAL;
                        int hi = hex_value(value[i + 1]), lo = hex_value(value[i + 2]);
                        if (hi < 0 || lo < 0)
                                return -EINVAL;
                        c = (uint8_t)(hi << 4 | lo);
                        i += 2;
                } else if (c < 0x21 || c > 0x7e)
                        return -EINVAL;
                if (n >= cap)
                        return -E2BIG;
                out[n++] = c;
        }
        *ret_len = n;
        return 0;
}

/* Decodes into a NUL-terminated string of at most cap - 1 bytes, with no NUL inside. */
static int decode_string(const char *value, size_t len, char *out, size_t cap) {
        size_t n;
        int r = percent_decode(value, len, (uint8_t *)out, cap - 1, &n);

        if (r < 0)
                return r;
        if (memchr(out, '\0', n))
                return -EINVAL;
        out[n] = '\0';
        return 0;
}

enum attribute {
        ATTR_TOKEN,
        ATTR_SERIAL,
        ATTR_OBJECT,
        ATTR_ID,
        ATTR_TYPE,
        ATTR_PIN_VALUE,
        ATTR_PIN_SOURCE,
        ATTR_MODULE_PATH,
        ATTR_UNSUPPORTED, /* defined by RFC 7512, not used by kos */
        ATTR_UNKNOWN,
};

static const struct {
        const char *name;
        enum attribute attribute;
        bool query;
} attributes[] = {
        {"token", ATTR_TOKEN, false},
        {"serial", ATTR_SERIAL, false},
        {"object", ATTR_OBJECT, false},
        {"id", ATTR_ID, false},
        {"type", ATTR_TYPE, false},
        {"manufacturer", ATTR_UNSUPPORTED, false},
        {"model", ATTR_UNSUPPORTED, false},
        {"library-manufacturer", ATTR_UNSUPPORTED, false},
        {"library-description", ATTR_UNSUPPORTED, false},
        {"library-version", ATTR_UNSUPPORTED, false},
        {"slot-description", ATTR_UNSUPPORTED, false},
        {"slot-manufacturer", ATTR_UNSUPPORTED, false},
        {"slot-id", ATTR_UNSUPPORTED, false},
        {"pin-value", ATTR_PIN_VALUE, true},
        {"pin-source", ATTR_PIN_SOURCE, true},
        {"module-path", ATTR_MODULE_PATH, true},
        {"module-name", ATTR_UNSUPPORTED, true},
};

static enum attribute attribute_lookup(const char *name, size_t len, bool query, bool *ret_wrong_part) {
        *ret_wrong_part = false;
        for (size_t i = 0; i < ELEMENTSOF(attributes); i++)
                if (strlen(attributes[i].name) == len && memcmp(attributes[i].name, name, len) == 0) {
                        *ret_wrong_part = attributes[i].query != query;
                        return attributes[i].attribute;
                }
        return ATTR_UNKNOWN;
}

/* The attribute name for a message: names are never secret, but an
 * unparseable one is not echoed (it could be a mistyped PIN). */
static void name_for_message(const char *name, size_t len, char out[static 32]) {
        bool plain = len > 0 && len < 32;

        for (size_t i = 0; plain && i < len; i++)
                plain = (name[i] >= 'a' && name[i] <= 'z') || name[i] == '-' || (name[i] >= '0' && name[i] <= '9');
        if (plain)
                snprintf(out, 32, "'%.*s'", (int)len, name);
        else
                snprintf(out, 32, "%s", "(name not shown)");
}

static int set_attribute(struct kos_pkcs11_uri *u, enum attribute a, const char *value, size_t len) {
        size_t n;
        int r;

        switch (a) {
        case ATTR_TOKEN:
                u->has_token = true;
                return decode_string(value, len, u->token, sizeof u->token);
        case ATTR_SERIAL:
                u->has_serial = true;
                return decode_string(value, len, u->serial, sizeof u->serial);
        case ATTR_OBJECT:
                u->has_object = true;
                return decode_string(value, len, u->object, sizeof u->object);
        case ATTR_ID:
                u->has_id = true;
                r = percent_decode(value, len, u->id, sizeof u->id, &n);
                u->id_len = n;
                return r < 0 ? r : n == 0 ? -EINVAL : 0;
        case ATTR_TYPE:
                if (len == 7 && memcmp(value, "private", 7) == 0)
                        u->want_private = true;
                else if (len == 6 && memcmp(value, "public", 6) == 0)
                        u->want_public = true;
                else
                        return -EINVAL;
                return 0;
        case ATTR_PIN_VALUE:
                u->has_pin_value = true;
                return decode_string(value, len, u->pin_value, sizeof u->pin_value);
        case ATTR_PIN_SOURCE:
                u->has_pin_source = true;
                return decode_string(value, len, u->pin_source, sizeof u->pin_source);
        case ATTR_MODULE_PATH:
                u->has_module_path = true;
                return decode_string(value, len, u->module_path, sizeof u->module_path);
        case ATTR_UNSUPPORTED:
        case ATTR_UNKNOWN:
                return -EOPNOTSUPP;
        }
        return -EOPNOTSUPP;
}

/* One "name=value" of the path (query false) or the query. */
static int parse_attribute(struct kos_pkcs11_uri *u, const char *s, size_t len, bool query, unsigned *seen, struct kos_error *err) {
        const char *eq = memchr(s, '=', len);
        char name[32];
        bool wrong_part;
        int r;

        if (!eq)
                return kos_error_set(err, -EINVAL, "PKCS#11 URI: an attribute without '=' in the %s", query ? "query" : "path");
        size_t name_len = (size_t)(eq - s);
        name_for_message(s, name_len, name);
        enum attribute a = attribute_lookup(s, name_len, query, &wrong_part);
        if (a == ATTR_UNKNOWN)
                return kos_error_set(err, -EINVAL, "PKCS#11 URI: unknown attribute %s (refused: it would be ignored)", name);
        if (a == ATTR_UNSUPPORTED)
                return kos_error_set(err, -EINVAL, "PKCS#11 URI: attribute %s is not supported by kos%s", name,
                                 strcmp(name, "'module-name'") == 0 ? " (use module-path)" : "");
        if (wrong_part)
                return kos_error_set(err, -EINVAL, "PKCS#11 URI: attribute %s belongs in the %s", name,
                                 query ? "path (before '?')" : "query (after '?')");
        if (*seen & (1u << a))
                return kos_error_set(err, -EINVAL, "PKCS#11 URI: attribute %s given twice", name);
        *seen |= 1u << a;
        r = set_attribute(u, a, eq + 1, len - name_len - 1);
        if (r == -E2BIG)
                return kos_error_set(err, -EINVAL, "PKCS#11 URI: the value of %s is too long", name);
        if (r < 0)
                return kos_error_set(err, -EINVAL, "PKCS#11 URI: the value of %s is malformed%s", name,
                                 a == ATTR_TYPE ? " (kos knows type=private and type=public)"
                                                : " (a bad %XX escape, a space or control character, or an empty id)");
        return 0;
}

int kos_pkcs11_uri_parse(const char *uri, struct kos_pkcs11_uri *ret, struct kos_error *ret_error) {
        unsigned seen = 0;
        int r = 0;

        memset(ret, 0, sizeof *ret);
        if (!kos_pkcs11_uri_is(uri))
                return kos_error_set(ret_error, -EINVAL, "not a PKCS#11 URI (it starts with 'pkcs11:')");
        size_t total = strnlen(uri, KOS_PKCS11_URI_MAX + 1);
        if (total > KOS_PKCS11_URI_MAX)
                return kos_error_set(ret_error, -EINVAL, "PKCS#11 URI longer than %d bytes", KOS_PKCS11_URI_MAX);
        const char *p = uri + strlen(URI_SCHEME), *end = uri + total;
        const char *question = memchr(p, '?', (size_t)(end - p));
        const char *path_end = question ? question : end;
        /* path: attributes separated by ';' (an empty path is allowed) */
        while (r >= 0 && p < path_end) {
                const char *semi = memchr(p, ';', (size_t)(path_end - p));
                const char *item_end = semi ? semi : path_end;
                r = parse_attribute(ret, p, (size_t)(item_end - p), false, &seen, ret_error);
                p = semi ? semi + 1 : path_end;
                if (r >= 0 && semi && p == path_end)
                        r = kos_error_set(ret_error, -EINVAL, "PKCS#11 URI: empty attribute in the path");
        }
        /* query: attributes separated by '&' */
        if (r >= 0 && question) {
                p = question + 1;
                if (p == end)
                        r = kos_error_set(ret_error, -EINVAL, "PKCS#11 URI: empty query after '?'");
                while (r >= 0 && p < end) {
                        const char *amp = memchr(p, '&', (size_t)(end - p));
                        const char *item_end = amp ? amp : end;
                        r = parse_attribute(ret, p, (size_t)(item_end - p), true, &seen, ret_error);
                        p = amp ? amp + 1 : end;
                        if (r >= 0 && amp && p == end)
                                r = kos_error_set(ret_error, -EINVAL, "PKCS#11 URI: empty attribute in the query");
                }
        }
        if (r >= 0 && ret->has_pin_value && ret->has_pin_source)
                r = kos_error_set(ret_error, -EINVAL, "PKCS#11 URI: give pin-value or pin-source, not both");
        if (r < 0)
                kos_pkcs11_uri_done(ret);
        return r;
}

void kos_pkcs11_uri_done(struct kos_pkcs11_uri *uri) {
        explicit_bzero(uri->pin_value, sizeof uri->pin_value);
        uri->has_pin_value = false;
}

/* Printable text of a label or object name for messages; other bytes as '?'. */
static void printable(const char *s, char *out, size_t size) {
        size_t i = 0;

        for (; s[i] && i + 1 < size; i++)
                out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
        out[i] = '\0';
}

void kos_pkcs11_uri_describe(const struct kos_pkcs11_uri *uri, char *buf, size_t size) {
        char token[KOS_PKCS11_LABEL_MAX + 1], object[KOS_PKCS11_OBJECT_MAX + 1], id[2 * 16 + 4] = "";
        size_t n = 0;

        printable(uri->token, token, sizeof token);
        printable(uri->object, object, sizeof object);
        for (size_t i = 0; i < uri->id_len && i < 16; i++)
                n += (size_t)snprintf(id + n, sizeof id - n, "%02x", uri->id[i]);
        if (uri->id_len > 16)
                snprintf(id + n, sizeof id - n, "...");
        snprintf(buf, size, "token %s%s%s, object %s%s%s%s%s", uri->has_token ? "'" : "", uri->has_token ? token : "(any)",
                 uri->has_token ? "'" : "", uri->has_object ? "'" : "", uri->has_object ? object : "(any)",
                 uri->has_object ? "'" : "", uri->has_id ? ", id " : "", id);
}

int kos_pkcs11_ec_point_parse(const uint8_t *untrusted, size_t len, uint8_t ret_raw[static KOS_ED25519_PUBLIC_LEN]) {
        /* DER OCTET STRING, short length form, exactly one 32-byte key. */
        if (len != 2 + KOS_ED25519_PUBLIC_LEN || untrusted[0] != 0x04 || untrusted[1] != KOS_ED25519_PUBLIC_LEN)
                return -EBADMSG;
        memcpy(ret_raw, untrusted + 2, KOS_ED25519_PUBLIC_LEN);
        return 0;
}

/* Where Debian and others install p11-kit's proxy module (p11-kit-1.pc, proxy_module). */
static const char *const proxy_modules[] = {
        "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so",
        "/usr/lib/aarch64-linux-gnu/p11-kit-proxy.so",
        "/usr/lib64/p11-kit-proxy.so",
        "/usr/lib/p11-kit-proxy.so",
};

const char *kos_pkcs11_module_choose(const struct kos_pkcs11_uri *uri, const char *module) {
        const char *env = getenv("KOS_PKCS11_MODULE");

        if (uri->has_module_path)
                return uri->module_path;
        if (module && *module)
                return module;
        if (env && *env)
                return env;
        for (size_t i = 0; i < ELEMENTSOF(proxy_modules); i++)
                if (access(proxy_modules[i], R_OK) == 0)
                        return proxy_modules[i];
        return NULL;
}

/* ---- talking to the module ---- */

struct token {
        void *library;
        CK_FUNCTION_LIST_PTR f;
        bool finalize; /* we initialized the module, so we finalize it */
        CK_SLOT_ID slot;
        CK_SESSION_HANDLE session;
        bool has_session, logged_in;
        CK_FLAGS token_flags;
        char label[KOS_PKCS11_LABEL_MAX + 1];
};

static const char *rv_string(CK_RV rv) {
        switch (rv) {
        case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
        case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
        case CKR_PIN_LEN_RANGE: return "CKR_PIN_LEN_RANGE";
        case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
        case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
        case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
        case CKR_KEY_TYPE_INCONSISTENT: return "CKR_KEY_TYPE_INCONSISTENT";
        case CKR_KEY_FUNCTION_NOT_PERMITTED: return "CKR_KEY_FUNCTION_NOT_PERMITTED";
        case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
        case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
        case CKR_FUNCTION_FAILED: return "CKR_FUNCTION_FAILED";
        default: return NULL;
        }
}

static int token_error(struct kos_error *err, int r, CK_RV rv, const char *what) {
        const char *name = rv_string(rv);

        if (name)
                return kos_error_set(err, r, "%s: %s", what, name);
        return kos_error_set(err, r, "%s: PKCS#11 error 0x%lx", what, (unsigned long)rv);
}

/* A 32-byte blank-padded CK_TOKEN_INFO field as a C string. */
static void unpad(const CK_UTF8CHAR *field, size_t size, char *out) {
        size_t n = size;

        while (n > 0 && field[n - 1] == ' ')
                n--;
        memcpy(out, field, n);
        out[n] = '\0';
}

static int module_load(struct token *t, const char *module, struct kos_error *err) {
        CK_RV (*get_function_list)(CK_FUNCTION_LIST_PTR_PTR);
        CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
        CK_RV rv;

        if (!module)
                return kos_error_set(err, -ELIBBAD,
                                 "no PKCS#11 module: give module-path= in the URI, --pkcs11-module or KOS_PKCS11_MODULE "
                                 "(p11-kit's proxy module is not installed)");
        t->library = dlopen(module, RTLD_NOW | RTLD_LOCAL);
        if (!t->library)
                return kos_error_set(err, -ELIBBAD, "cannot load PKCS#11 module %s: %s", module, dlerror());
        *(void **)&get_function_list = dlsym(t->library, "C_GetFunctionList");
        if (!get_function_list || get_function_list(&t->f) != CKR_OK || !t->f)
                return kos_error_set(err, -ELIBBAD, "%s is not a PKCS#11 module (no C_GetFunctionList)", module);
        rv = t->f->C_Initialize(&args);
        if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
                return token_error(err, -ELIBBAD, rv, "the PKCS#11 module failed to initialize");
        t->finalize = rv == CKR_OK;
        return 0;
}

/* The one slot whose token matches the URI's token label (and serial). */
static int slot_find(struct token *t, const struct kos_pkcs11_uri *u, const char *module, struct kos_error *err) {
        CK_SLOT_ID slots[MAX_SLOTS];
        CK_ULONG n = MAX_SLOTS;
        char present[256] = "", label[KOS_PKCS11_LABEL_MAX + 1], serial[17], shown[KOS_PKCS11_LABEL_MAX + 1];
        size_t matches = 0, used = 0;
        CK_RV rv = t->f->C_GetSlotList(CK_TRUE, slots, &n);

        if (rv == CKR_BUFFER_TOO_SMALL)
                return kos_error_set(err, -EIO, "the PKCS#11 module has more than %d tokens", MAX_SLOTS);
        if (rv != CKR_OK)
                return token_error(err, -EIO, rv, "cannot list the PKCS#11 slots");
        for (CK_ULONG i = 0; i < n; i++) {
                CK_TOKEN_INFO info;
                if (t->f->C_GetTokenInfo(slots[i], &info) != CKR_OK || !(info.flags & CKF_TOKEN_INITIALIZED))
                        continue;
                unpad(info.label, sizeof info.label, label);
                unpad(info.serialNumber, sizeof info.serialNumber, serial);
                printable(label, shown, sizeof shown);
                if (used < sizeof present)
                        used += (size_t)snprintf(present + used, sizeof present - used, "%s'%s'", used ? ", " : "", shown);
                if ((u->has_token && strcmp(label, u->token) != 0) || (u->has_serial && strcmp(serial, u->serial) != 0))
                        continue;
                if (matches++ == 0) {
                        t->slot = slots[i];
                        t->token_flags = info.flags;
                        memcpy(t->label, label, sizeof label);
                }
        }
        printable(u->token, shown, sizeof shown);
        if (matches == 0)
                return kos_error_set(err, -ENODEV, "token %s%s%s not found in %s (tokens present: %s)", u->has_token ? "'" : "",
                                 u->has_token ? shown : "(any)", u->has_token ? "'" : "", module, present[0] ? present : "none");
        if (matches > 1)
                return kos_error_set(err, -ENODEV, "%zu tokens match (%s); name one with token= (and serial=)", matches, present);
        return 0;
}

/* The PIN from pin-value or the file of pin-source (file:PATH or PATH); one
 * trailing newline of the file is not part of it. */
static int pin_read(const struct kos_pkcs11_uri *u, char pin[static KOS_PKCS11_PIN_MAX + 1], size_t *ret_len, struct kos_error *err) {
        if (u->has_pin_value) {
                *ret_len = strlen(u->pin_value);
                memcpy(pin, u->pin_value, *ret_len + 1);
                return 0;
        }
        const char *path = u->pin_source;
        if (strncmp(path, "file://", 7) == 0)
                path += 7; /* file:///abs: an empty authority */
        else if (strncmp(path, "file:", 5) == 0)
                path += 5;
        else if (strchr(path, ':'))
                return kos_error_set(err, -EINVAL, "pin-source: only file: is supported");
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return kos_error_set(err, -errno, "cannot open the pin-source file %s: %s", path, strerror(errno));
        ssize_t n = read(fd, pin, KOS_PKCS11_PIN_MAX + 1);
        if (n < 0)
                return kos_error_set(err, -errno, "cannot read the pin-source file %s: %s", path, strerror(errno));
        if (n > KOS_PKCS11_PIN_MAX) {
                explicit_bzero(pin, KOS_PKCS11_PIN_MAX + 1);
                return kos_error_set(err, -EINVAL, "the pin-source file %s is longer than %d bytes", path, KOS_PKCS11_PIN_MAX);
        }
        if (n > 0 && pin[n - 1] == '\n')
                n--;
        pin[n] = '\0';
        *ret_len = (size_t)n;
        return 0;
}

static int session_login(struct token *t, const struct kos_pkcs11_uri *u, bool required, struct kos_error *err) {
        char pin[KOS_PKCS11_PIN_MAX + 1];
        size_t len = 0;
        int r;

        if (!u->has_pin_value && !u->has_pin_source) {
                if (required && (t->token_flags & CKF_LOGIN_REQUIRED))
                        return kos_error_set(err, -EACCES,
                                         "token '%s' needs the user PIN: add pin-source=file:PATH (or pin-value=) to the "
                                         "URI's query",
                                         t->label);
                return 0;
        }
        if ((r = pin_read(u, pin, &len, err)) < 0)
                return r;
        CK_RV rv = t->f->C_Login(t->session, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)len);
        explicit_bzero(pin, sizeof pin);
        if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
                t->logged_in = true;
                return 0;
        }
        if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE)
                return kos_error_set(err, -EACCES, "wrong PIN for token '%s'", t->label);
        if (rv == CKR_PIN_LOCKED)
                return kos_error_set(err, -EACCES, "the user PIN of token '%s' is locked", t->label);
        return token_error(err, -EACCES, rv, "cannot log in to the token");
}

static void token_close(struct token *t) {
        if (t->has_session)
                t->f->C_CloseSession(t->session); /* also logs out */
        if (t->finalize)
                t->f->C_Finalize(NULL);
        /* The module stays loaded until the process exits: a module may
         * leave atexit handlers or thread destructors behind (and a leak
         * report then names the module rather than an unmapped address). */
        *t = (struct token){0};
}

static int token_open(struct token *t, const struct kos_pkcs11_uri *u, const char *module, bool login_required, struct kos_error *err) {
        int r;

        *t = (struct token){0};
        if ((r = module_load(t, module, err)) < 0 || (r = slot_find(t, u, module, err)) < 0)
                return r;
        CK_RV rv = t->f->C_OpenSession(t->slot, CKF_SERIAL_SESSION, NULL, NULL, &t->session);
        if (rv != CKR_OK)
                return token_error(err, -EIO, rv, "cannot open a session on the token");
        t->has_session = true;
        return session_login(t, u, login_required, err);
}

/* Finds the objects of class cls matching the URI's object label and id: up to 2. */
static int objects_find(struct token *t, const struct kos_pkcs11_uri *u, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE ret[static 2],
                        CK_ULONG *ret_count) {
        CK_ATTRIBUTE template[3] = {{CKA_CLASS, &cls, sizeof cls}};
        CK_ULONG n = 1;

        if (u->has_object)
                template[n++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)u->object, strlen(u->object)};
        if (u->has_id)
                template[n++] = (CK_ATTRIBUTE){CKA_ID, (void *)u->id, u->id_len};
        if (t->f->C_FindObjectsInit(t->session, template, n) != CKR_OK)
                return -EIO;
        CK_RV rv = t->f->C_FindObjects(t->session, ret, 2, ret_count);
        t->f->C_FindObjectsFinal(t->session);
        return rv == CKR_OK ? 0 : -EIO;
}

static int key_find(struct token *t, const struct kos_pkcs11_uri *u, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *ret, struct kos_error *err) {
        const char *kind = cls == CKO_PRIVATE_KEY ? "private" : "public";
        CK_OBJECT_HANDLE found[2];
        CK_ULONG n = 0;
        CK_KEY_TYPE type = 0;
        char what[KOS_PKCS11_OBJECT_MAX + 128];

        kos_pkcs11_uri_describe(u, what, sizeof what);
        if (objects_find(t, u, cls, found, &n) < 0)
                return kos_error_set(err, -EIO, "cannot search token '%s' for keys", t->label);
        if (n == 0)
                return kos_error_set(err, -ENOKEY, "no %s key matching %s%s", kind, what,
                                 !t->logged_in && (t->token_flags & CKF_LOGIN_REQUIRED) ? " (or it is visible only after login: add the PIN)" : "");
        if (n > 1)
                return kos_error_set(err, -ENOKEY, "more than one %s key matches %s; name it with object= or id=", kind, what);
        CK_ATTRIBUTE attr = {CKA_KEY_TYPE, &type, sizeof type};
        if (t->f->C_GetAttributeValue(t->session, found[0], &attr, 1) != CKR_OK)
                return kos_error_set(err, -EIO, "cannot read the key type of the %s key %s", kind, what);
        if (type != CKK_EC_EDWARDS)
                return kos_error_set(err, -EPROTONOSUPPORT, "the %s key %s is not an Ed25519 key (key type 0x%lx, not CKK_EC_EDWARDS)",
                                 kind, what, (unsigned long)type);
        *ret = found[0];
        return 0;
}

static int public_key_read(struct token *t, const struct kos_pkcs11_uri *u, uint8_t ret_raw[static KOS_ED25519_PUBLIC_LEN],
                           struct kos_error *err) {
        CK_OBJECT_HANDLE key;
        uint8_t untrusted_point[EC_POINT_MAX];
        CK_ATTRIBUTE attr = {CKA_EC_POINT, untrusted_point, sizeof untrusted_point};
        int r;

        if ((r = key_find(t, u, CKO_PUBLIC_KEY, &key, err)) < 0)
                return r;
        CK_RV rv = t->f->C_GetAttributeValue(t->session, key, &attr, 1);
        if (rv != CKR_OK)
                return token_error(err, -EIO, rv, "cannot read CKA_EC_POINT of the public key");
        if (kos_pkcs11_ec_point_parse(untrusted_point, attr.ulValueLen, ret_raw) < 0)
                return kos_error_set(err, -EPROTONOSUPPORT,
                                 "the public key's CKA_EC_POINT (%lu bytes) is not a DER OCTET STRING of a 32-byte Ed25519 key",
                                 (unsigned long)attr.ulValueLen);
        return 0;
}

static int mechanism_check(struct token *t, struct kos_error *err) {
        CK_MECHANISM_INFO info;
        CK_RV rv = t->f->C_GetMechanismInfo(t->slot, CKM_EDDSA, &info);

        if (rv == CKR_MECHANISM_INVALID || (rv == CKR_OK && !(info.flags & CKF_SIGN)))
                return kos_error_set(err, -EOPNOTSUPP, "token '%s' cannot sign with CKM_EDDSA (Ed25519)", t->label);
        if (rv != CKR_OK)
                return token_error(err, -EIO, rv, "cannot ask the token about CKM_EDDSA");
        return 0;
}

static int sign_with(struct token *t, CK_OBJECT_HANDLE key, const void *message, size_t len,
                     uint8_t ret_signature[static KOS_ED25519_SIGNATURE_LEN], struct kos_error *err) {
        CK_MECHANISM mechanism = {CKM_EDDSA, NULL, 0}; /* no parameters: pure Ed25519 (RFC 8032) */
        CK_ULONG sig_len = KOS_ED25519_SIGNATURE_LEN;
        CK_RV rv = t->f->C_SignInit(t->session, &mechanism, key);

        if (rv == CKR_MECHANISM_INVALID || rv == CKR_KEY_TYPE_INCONSISTENT)
                return token_error(err, -EOPNOTSUPP, rv, "the token refused CKM_EDDSA with this key");
        if (rv != CKR_OK)
                return token_error(err, -EIO, rv, "C_SignInit failed");
        rv = t->f->C_Sign(t->session, (CK_BYTE_PTR)message, (CK_ULONG)len, ret_signature, &sig_len);
        if (rv != CKR_OK)
                return token_error(err, -EIO, rv, "C_Sign failed");
        if (sig_len != KOS_ED25519_SIGNATURE_LEN)
                return kos_error_set(err, -EIO, "the token returned a %lu-byte signature, not 64", (unsigned long)sig_len);
        return 0;
}

int kos_pkcs11_public_key(const struct kos_pkcs11_uri *uri, const char *module,
                          uint8_t ret_raw[static KOS_ED25519_PUBLIC_LEN], struct kos_error *ret_error) {
        struct token t;
        int r = token_open(&t, uri, module, false, ret_error);

        if (r >= 0)
                r = public_key_read(&t, uri, ret_raw, ret_error);
        token_close(&t);
        return r;
}

int kos_pkcs11_sign(const struct kos_pkcs11_uri *uri, const char *module, const void *message, size_t len,
                    uint8_t ret_signature[static KOS_ED25519_SIGNATURE_LEN], uint8_t ret_id[static KOS_KEY_ID_LEN],
                    struct kos_error *ret_error) {
        uint8_t raw[KOS_ED25519_PUBLIC_LEN];
        CK_OBJECT_HANDLE key;
        struct token t;
        int r = token_open(&t, uri, module, true, ret_error);

        if (r >= 0)
                r = public_key_read(&t, uri, raw, ret_error);
        if (r >= 0)
                r = key_find(&t, uri, CKO_PRIVATE_KEY, &key, ret_error);
        if (r >= 0)
                r = mechanism_check(&t, ret_error);
        if (r >= 0)
                r = sign_with(&t, key, message, len, ret_signature, ret_error);
        token_close(&t);
        if (r < 0)
                return r;
        /* The key id comes from the public object: make sure it is the pair
         * of the private key that signed, or the .sig line would lie. */
        r = kos_ed25519_verify(raw, message, len, ret_signature);
        if (r <= 0)
                return kos_error_set(ret_error, -EIO,
                                 "the token's signature does not verify with its public key of the same name: "
                                 "the public and private objects are not one key pair");
        return kos_key_id_of(raw, ret_id);
}
