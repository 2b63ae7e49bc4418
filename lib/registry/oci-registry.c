/* SPDX-License-Identifier: MIT */
#include "oci-registry.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKEN_RESPONSE_MAX (64u << 10)
#define ERROR_BODY_MAX 512
#define HEADER_VALUE_MAX 4096

enum auth_mode { AUTH_NONE, AUTH_BASIC, AUTH_BEARER };

/* Where a request goes, as far as credentials are concerned (RFC 6454):
 * scheme, host and port, the default port filled in. */
struct origin {
        bool https;
        char host[KOS_OCI_HOST_MAX + 1];
        unsigned port;
};

struct kos_oci_client {
        CURL *curl;
        struct kos_oci_ref ref;
        char base[KOS_OCI_HOST_MAX + 16]; /* scheme://host[:port] */
        struct origin origin;             /* of base: the only one credentials go to (and the realm) */
        char *credentials;
        char *ca_file;
        enum auth_mode auth;
        char *token;
        unsigned stall_seconds;
        uint64_t bound_ns, deadline_ns; /* of the request under way (perform()) */
        uint64_t outer_bound_ns, outer_deadline_ns; /* of a run of requests (kos_oci_client_set_deadline()), or 0 */
        struct kos_error error; /* the last failure of a request */
};

/* One request and what came back. */
struct request {
        CURL *curl;
        const char *method; /* GET, HEAD, POST, PUT */
        const char *url;    /* absolute; the last hop after perform() */
        bool to_registry;   /* url is on the registry's origin, and no redirect left it: credentials may go */
        bool left_registry; /* a redirect went to another origin: no credentials for the rest of the way */
        bool to_token_service; /* to the realm the registry named: the credentials go, never the token */
        uint64_t expected_size; /* what the request should bring, for its bound */
        const char *accept, *content_type;
        const void *body; /* PUT data, or NULL with body_fd */
        int body_fd;
        uint64_t body_size, body_pos;
        uint64_t range_from;
        kos_oci_body_fn sink; /* the body of a 2xx answer; others go to error_body */
        void *userdata;
        int sink_error;
        uint64_t skip; /* bytes of the body to drop (a 200 answer to a Range request) */
        long status;
        char location[HEADER_VALUE_MAX], challenge[HEADER_VALUE_MAX];
        bool header_too_long; /* Location or WWW-Authenticate did not fit: not used */
        size_t header_bytes;
        bool headers_over_cap;
        char error_body[ERROR_BODY_MAX];
        size_t error_body_len;
        uint64_t error_body_read;
        bool error_body_over_cap;
};

const char *kos_oci_client_error(const struct kos_oci_client *c) {
        return c->error.msg[0] ? c->error.msg : "no error";
}

/* --- References ----------------------------------------------------------- */

static bool digest_valid(const char *digest) {
        uint8_t raw[32];
        return strlen(digest) == KOS_OCI_DIGEST_LEN && strncmp(digest, "sha256:", 7) == 0 &&
               kos_hex_decode(digest + 7, 64, raw, sizeof raw) == 0;
}

static bool is_lower_alnum(char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*. */
static bool repository_component_valid(const char *s, size_t len) {
        size_t i = 0;

        if (len == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
                return false;
        while (i < len) {
                if (is_lower_alnum(s[i])) {
                        i++;
                        continue;
                }
                size_t run = 0;
                while (i + run < len && !is_lower_alnum(s[i + run]))
                        run++;
                bool ok = (run == 1 && (s[i] == '.' || s[i] == '_' || s[i] == '-')) || (run == 2 && s[i] == '_' && s[i + 1] == '_') ||
                          strspn(s + i, "-") >= run;
                if (!ok)
                        return false;
                i += run;
        }
        return true;
}

static bool repository_valid(const char *s) {
        for (;;) {
                const char *slash = strchr(s, '/');
                size_t len = slash ? (size_t)(slash - s) : strlen(s);
                if (!repository_component_valid(s, len))
                        return false;
                if (!slash)
                        return true;
                s = slash + 1;
        }
}

static bool tag_valid(const char *s) {
        size_t len = strlen(s);

        if (len == 0 || len > KOS_OCI_TAG_MAX || strchr(".-", s[0]))
                return false;
        return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == len;
}

static bool host_valid(const char *s, size_t len) {
        return len > 0 && len <= KOS_OCI_HOST_MAX &&
               strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-:[]") >= len;
}

int kos_oci_ref_parse(const char *s, struct kos_oci_ref *ret, struct kos_error *ret_error) {
        *ret = (struct kos_oci_ref){0};
        if (strncmp(s, "http://", 7) == 0) {
                ret->plain_http = true;
                s += 7;
        } else if (strncmp(s, "https://", 8) == 0)
                s += 8;
        const char *slash = strchr(s, '/');
        if (!slash || !host_valid(s, (size_t)(slash - s)))
                return kos_error_set(ret_error, -EINVAL, "expected [http[s]://]HOST[:PORT]/REPOSITORY:TAG");
        memcpy(ret->host, s, (size_t)(slash - s));
        const char *path = slash + 1, *at = strchr(path, '@'), *colon = at ? at : strrchr(path, ':');
        if (!colon || strchr(colon, '/'))
                return kos_error_set(ret_error, -EINVAL, "no :TAG or @sha256:DIGEST after the repository");
        size_t repo_len = (size_t)(colon - path);
        if (repo_len == 0 || repo_len > KOS_OCI_REPOSITORY_MAX)
                return kos_error_set(ret_error, -EINVAL, "the repository is empty or longer than %d characters", KOS_OCI_REPOSITORY_MAX);
        memcpy(ret->repository, path, repo_len);
        if (!repository_valid(ret->repository))
                return kos_error_set(ret_error, -EINVAL, "repository \"%s\" is not lowercase [a-z0-9] components separated by / . _ -",
                                     ret->repository);
        if (at) {
                if (!digest_valid(at + 1))
                        return kos_error_set(ret_error, -EINVAL, "digest \"%.80s\" is not sha256: and 64 lowercase hex digits", at + 1);
                ret->by_digest = true;
                snprintf(ret->tag, sizeof ret->tag, "%s", at + 1);
                return 0;
        }
        if (!tag_valid(colon + 1))
                return kos_error_set(ret_error, -EINVAL, "tag \"%.130s\" is not [A-Za-z0-9_][A-Za-z0-9._-]{0,127}", colon + 1);
        snprintf(ret->tag, sizeof ret->tag, "%s", colon + 1);
        return 0;
}

/* --- Origins -------------------------------------------------------------- */

/* The origin of an absolute http(s) URL; -EINVAL for anything else. */
static int url_origin(const char *url, struct origin *ret) {
        CURLU *u = curl_url();
        char *scheme = NULL, *host = NULL, *port = NULL;
        int r = -EINVAL;

        if (!u)
                return -ENOMEM;
        if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK && curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
            (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0) && strlen(host) < sizeof ret->host) {
                ret->https = strcasecmp(scheme, "https") == 0;
                snprintf(ret->host, sizeof ret->host, "%s", host);
                ret->port = (unsigned)strtoul(port, NULL, 10);
                r = 0;
        }
        curl_free(scheme);
        curl_free(host);
        curl_free(port);
        curl_url_cleanup(u);
        return r;
}

static bool origin_equal(const struct origin *a, const struct origin *b) {
        return a->https == b->https && a->port == b->port && strcasecmp(a->host, b->host) == 0;
}

/* "host:port" of url, for messages ("?" when it does not parse). */
static const char *url_host(const char *url, char *buf, size_t size) {
        struct origin o;

        if (url_origin(url, &o) < 0)
                snprintf(buf, size, "?");
        else
                snprintf(buf, size, "%s:%u", o.host, o.port);
        return buf;
}

/* --- The client ----------------------------------------------------------- */

int kos_oci_client_new(const struct kos_oci_ref *ref, const struct kos_oci_client_options *options,
                       struct kos_oci_client **ret) {
        static bool initialised;
        struct kos_oci_client *c;

        if (!initialised) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return -ENOMEM;
                initialised = true;
        }
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->ref = *ref;
        c->stall_seconds = options->test_stall_seconds > 0 && options->test_stall_seconds < KOS_OCI_STALL_SECONDS
                                   ? options->test_stall_seconds
                                   : KOS_OCI_STALL_SECONDS;
        snprintf(c->base, sizeof c->base, "%s://%s", ref->plain_http ? "http" : "https", ref->host);
        c->curl = curl_easy_init();
        if (!c->curl || (options->credentials && !(c->credentials = strdup(options->credentials))) ||
            (options->ca_file && !(c->ca_file = strdup(options->ca_file)))) {
                kos_oci_client_free(c);
                return -ENOMEM;
        }
        if (url_origin(c->base, &c->origin) < 0) {
                kos_oci_client_free(c);
                return -EINVAL;
        }
        *ret = c;
        return 0;
}

void kos_oci_client_free(struct kos_oci_client *c) {
        if (!c)
                return;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        if (c->credentials)
                explicit_bzero(c->credentials, strlen(c->credentials));
        free(c->credentials);
        free(c->ca_file);
        if (c->token)
                explicit_bzero(c->token, strlen(c->token));
        free(c->token);
        free(c);
}

/* Copies a header's value; false when it did not fit (then it is not used). */
static bool copy_header_value(char *dst, const char *value, size_t len) {
        while (len > 0 && (value[0] == ' ' || value[0] == '\t'))
                value++, len--;
        while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n' || value[len - 1] == ' '))
                len--;
        if (len >= HEADER_VALUE_MAX) {
                dst[0] = '\0';
                return false;
        }
        memcpy(dst, value, len);
        dst[len] = '\0';
        return true;
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata) {
        struct request *rq = userdata;
        size_t len = size * n;

        /* Headers without end (or endless 1xx answers) stop the transfer. */
        rq->header_bytes += len;
        if (rq->header_bytes > KOS_OCI_HEADERS_CAP) {
                rq->headers_over_cap = true;
                return 0;
        }
        if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
                /* A new response (after a 100 Continue): forget the last one's headers. */
                rq->location[0] = rq->challenge[0] = '\0';
                rq->header_too_long = false;
        } else if (len > 9 && strncasecmp(data, "location:", 9) == 0)
                rq->header_too_long |= !copy_header_value(rq->location, data + 9, len - 9);
        else if (len > 17 && strncasecmp(data, "www-authenticate:", 17) == 0)
                rq->header_too_long |= !copy_header_value(rq->challenge, data + 17, len - 17);
        return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata) {
        struct request *rq = userdata;
        size_t len = size * n, used = 0;
        long status = 0;

        (void)curl_easy_getinfo(rq->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status > 299 || !rq->sink) {
                /* An error's body: keep the start of it for the message, and
                 * stop reading a long one (the status is all that counts). */
                size_t room = sizeof rq->error_body - 1 - rq->error_body_len, take = len < room ? len : room;
                memcpy(rq->error_body + rq->error_body_len, data, take);
                rq->error_body_len += take;
                rq->error_body[rq->error_body_len] = '\0';
                rq->error_body_read += len;
                if (rq->error_body_read > KOS_OCI_ERROR_BODY_CAP) {
                        rq->error_body_over_cap = true;
                        return 0; /* CURLE_WRITE_ERROR, taken as the end of the body */
                }
                return len;
        }
        if (status == 200 && rq->skip > 0) {
                used = rq->skip < len ? (size_t)rq->skip : len;
                rq->skip -= used;
        }
        if (used < len && (rq->sink_error = rq->sink(data + used, len - used, rq->userdata)) < 0)
                return 0; /* stops the transfer: CURLE_WRITE_ERROR */
        return len;
}

static size_t on_upload(char *buffer, size_t size, size_t n, void *userdata) {
        struct request *rq = userdata;
        size_t want = size * n;
        uint64_t left = rq->body_size - rq->body_pos;

        if (want > left)
                want = (size_t)left;
        if (rq->body) {
                memcpy(buffer, (const uint8_t *)rq->body + rq->body_pos, want);
                rq->body_pos += want;
                return want;
        }
        ssize_t got = pread(rq->body_fd, buffer, want, (off_t)rq->body_pos);
        if (got < 0 || (got == 0 && want > 0))
                return CURL_READFUNC_ABORT;
        rq->body_pos += (uint64_t)got;
        return (size_t)got;
}

/* Lets curl rewind an upload (it does when it must send the body again). */
static int on_seek(void *userdata, curl_off_t offset, int origin) {
        struct request *rq = userdata;

        if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > rq->body_size)
                return CURL_SEEKFUNC_FAIL;
        rq->body_pos = (uint64_t)offset;
        return CURL_SEEKFUNC_OK;
}

static int add_header(struct curl_slist **list, const char *format, ...) __attribute__((format(printf, 2, 3)));
static int add_header(struct curl_slist **list, const char *format, ...) {
        _cleanup_free_ char *line = NULL;
        va_list ap;
        int n;

        va_start(ap, format);
        n = vasprintf(&line, format, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        struct curl_slist *l = curl_slist_append(*list, line);
        if (!l)
                return -ENOMEM;
        *list = l;
        return 0;
}

static int build_headers(struct kos_oci_client *c, const struct request *rq, struct curl_slist **ret) {
        int r = 0;

        if (rq->accept)
                r = add_header(ret, "Accept: %s", rq->accept);
        if (r >= 0 && rq->content_type)
                r = add_header(ret, "Content-Type: %s", rq->content_type);
        if (r >= 0 && rq->range_from > 0)
                r = add_header(ret, "Range: bytes=%llu-", (unsigned long long)rq->range_from);
        /* The token stands for the credentials: the registry's origin only. */
        if (r >= 0 && c->auth == AUTH_BEARER && rq->to_registry && !rq->to_token_service)
                r = add_header(ret, "Authorization: Bearer %s", c->token);
        /* curl adds "Expect: 100-continue" to large PUTs; registries answer
         * the PUT itself, so skip the wait. */
        if (r >= 0 && (rq->body || rq->body_fd >= 0))
                r = add_header(ret, "Expect:");
        return r;
}

static void setup_transfer(struct kos_oci_client *c, struct request *rq, struct curl_slist *headers, long timeout_ms) {
        CURL *h = c->curl;

        curl_easy_reset(h);
        rq->curl = h;
        curl_easy_setopt(h, CURLOPT_URL, rq->url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        /* Redirects are followed by perform(), which decides where credentials go. */
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
        if (c->ca_file)
                curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)c->stall_seconds);
        /* curl measures the rate over the last few seconds: a trickle of
         * bytes now and then stays under the limit and ends the transfer. */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, (long)KOS_OCI_MIN_RATE);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)c->stall_seconds);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "kos");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, rq);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, rq);
        if (c->credentials && ((c->auth == AUTH_BASIC && rq->to_registry) || rq->to_token_service)) {
                curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
                curl_easy_setopt(h, CURLOPT_USERPWD, c->credentials);
        }
        if (strcmp(rq->method, "HEAD") == 0)
                curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        else if (strcmp(rq->method, "POST") == 0) {
                curl_easy_setopt(h, CURLOPT_POST, 1L);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        } else if (strcmp(rq->method, "PUT") == 0) {
                curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload);
                curl_easy_setopt(h, CURLOPT_READDATA, rq);
                curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
                curl_easy_setopt(h, CURLOPT_SEEKDATA, rq);
                curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_size);
        }
}

/* The whole bound of a request that expects about size bytes: set by
 * perform() for the request, its redirects and its token requests. */
static uint64_t step_bound_ns(const struct kos_oci_client *c, uint64_t size) {
        uint64_t seconds = 4ULL * c->stall_seconds + size / KOS_OCI_STEP_RATE;
        return seconds > UINT64_MAX / 1000000000ULL ? UINT64_MAX : seconds * 1000000000ULL;
}

static int curl_failure(struct kos_oci_client *c, const struct request *rq, CURLcode cr, const char *curl_error) {
        const char *why = curl_error[0] ? curl_error : curl_easy_strerror(cr);
        int r;

        switch (cr) {
        case CURLE_OPERATION_TIMEDOUT:
                /* curl stops at the bound to the millisecond, a little before deadline_ns */
                if (kos_now_ns() + 200000000ULL >= c->deadline_ns)
                        return kos_error_set(&c->error, -ETIMEDOUT, "%s %s: not done within its bound of %llu s (%s)", rq->method, rq->url,
                                         (unsigned long long)(c->bound_ns / 1000000000ULL), why);
                r = -ETIMEDOUT; /* connect timeout, or under the minimum rate: curl's message says which */
                break;
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_PARTIAL_FILE:
        case CURLE_GOT_NOTHING: r = -ECONNRESET; break;
        default: r = -EIO; break;
        }
        return kos_error_set(&c->error, r, "%s %s: %s", rq->method, rq->url, why);
}

/* One attempt at rq->url. 0 with rq->status set, or a negative errno (c->error says why). */
static int perform_once(struct kos_oci_client *c, struct request *rq) {
        struct curl_slist *headers = NULL;
        char curl_error[CURL_ERROR_SIZE] = "", host[KOS_OCI_HOST_MAX + 16];
        struct origin o;
        uint64_t now = kos_now_ns();
        int r;

        if (url_origin(rq->url, &o) < 0)
                return kos_error_set(&c->error, -EPROTO, "%s: not an http(s) URL", rq->url);
        rq->left_registry |= !origin_equal(&o, &c->origin);
        rq->to_registry = !rq->left_registry;
        if (now >= c->deadline_ns)
                return kos_error_set(&c->error, -ETIMEDOUT, "%s %s (%s): not done within its bound of %llu s", rq->method, rq->url,
                                 url_host(rq->url, host, sizeof host), (unsigned long long)(c->bound_ns / 1000000000ULL));
        if ((r = build_headers(c, rq, &headers)) < 0) {
                curl_slist_free_all(headers);
                return r;
        }
        rq->status = 0;
        rq->body_pos = 0;
        rq->error_body_len = rq->error_body_read = 0;
        rq->error_body[0] = '\0';
        rq->error_body_over_cap = false;
        rq->skip = rq->range_from;
        uint64_t left_ms = (c->deadline_ns - now) / 1000000ULL;
        setup_transfer(c, rq, headers, left_ms == 0 ? 1L : left_ms > LONG_MAX ? LONG_MAX : (long)left_ms);
        curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, curl_error);
        CURLcode cr = curl_easy_perform(c->curl);
        (void)curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &rq->status);
        curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
        curl_slist_free_all(headers);
        if (cr == CURLE_WRITE_ERROR && rq->headers_over_cap)
                return kos_error_set(&c->error, -EPROTO, "%s %s: %s answered more than %u bytes of headers", rq->method, rq->url,
                                 url_host(rq->url, host, sizeof host), KOS_OCI_HEADERS_CAP);
        if (cr == CURLE_WRITE_ERROR && rq->error_body_over_cap)
                return 0; /* the status is known; the rest of the body does not matter */
        if (cr == CURLE_WRITE_ERROR && rq->sink_error < 0)
                return rq->sink_error; /* the receiver stopped it, and says why */
        if (cr != CURLE_OK)
                return curl_failure(c, rq, cr, curl_error);
        return 0;
}

/* --- Authentication ------------------------------------------------------- */

/* The value of key in a challenge's key="value" list, or false. */
static bool challenge_param(const char *params, const char *key, char *ret, size_t size) {
        size_t key_len = strlen(key);

        for (const char *p = params; *p;) {
                while (*p == ' ' || *p == ',')
                        p++;
                const char *eq = strchr(p, '=');
                if (!eq)
                        return false;
                bool match = (size_t)(eq - p) == key_len && strncasecmp(p, key, key_len) == 0;
                const char *v = eq + 1, *end;
                if (*v == '"') {
                        v++;
                        end = strchr(v, '"');
                        if (!end)
                                return false;
                } else
                        end = v + strcspn(v, ",");
                if (match) {
                        size_t len = (size_t)(end - v);
                        if (len >= size)
                                return false;
                        memcpy(ret, v, len);
                        ret[len] = '\0';
                        return true;
                }
                p = *end == '"' ? end + 1 : end;
        }
        return false;
}

/* A token is sent in a header: only the characters of RFC 6750's b64token. */
static bool token_valid(const char *t) {
        size_t len = strlen(t);
        return len > 0 && len < 16384 &&
               strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=") == len;
}

struct buffer {
        char *data;
        size_t len, cap;
};

static int buffer_append(const void *data, size_t len, void *userdata) {
        struct buffer *b = userdata;

        if (len > b->cap - b->len)
                return -EFBIG;
        char *p = realloc(b->data, b->len + len + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p + b->len, data, len);
        b->data = p;
        b->len += len;
        b->data[b->len] = '\0';
        return 0;
}

/* After a transfer into b that ended with r: hands the body over as
 * *ret (NUL-terminated, "" for an empty one) and *ret_len, or frees it and
 * returns r when r is an error. */
static int buffer_take(struct buffer *b, int r, char **ret, size_t *ret_len) {
        if (r >= 0 && !b->data && !(b->data = calloc(1, 1)))
                r = -ENOMEM;
        if (r < 0) {
                free(b->data);
                b->data = NULL;
                return r;
        }
        *ret = TAKE_PTR(b->data);
        *ret_len = b->len;
        return 0;
}

/* The realm of a challenge the registry's own origin sent: an absolute URL,
 * https unless the registry itself was given as http://. It may be on
 * another host (public registries keep their token service apart). */
static int check_realm(struct kos_oci_client *c, const char *realm) {
        char host[KOS_OCI_HOST_MAX + 16];
        struct origin o;

        if (url_origin(realm, &o) < 0)
                return kos_error_set(&c->error, -EACCES, "the registry %s asks for a bearer token without a usable realm", c->base);
        if (!o.https && !c->ref.plain_http)
                return kos_error_set(&c->error, -EACCES,
                                 "the registry %s names a token service over plain http (%s): refused, credentials and "
                                 "tokens of an https registry go over https only",
                                 c->base, url_host(realm, host, sizeof host));
        return 0;
}

/* The bearer-token flow (Docker's token authentication, used by every
 * public registry): GET realm?service=...&scope=... (with the credentials,
 * when there are any), answer {"token": ...} or {"access_token": ...}. The
 * token service's answer is taken as it comes: a redirect is refused. */
static int fetch_token(struct kos_oci_client *c, const char *challenge) {
        char realm[HEADER_VALUE_MAX], service[1024] = "", scope[1024] = "", host[KOS_OCI_HOST_MAX + 16];
        struct buffer b = {.cap = TOKEN_RESPONSE_MAX};
        _cleanup_free_ char *url = NULL;
        int r;

        if (!challenge_param(challenge, "realm", realm, sizeof realm))
                return kos_error_set(&c->error, -EACCES, "the registry %s asks for a bearer token without a usable realm", c->base);
        if ((r = check_realm(c, realm)) < 0)
                return r;
        (void)challenge_param(challenge, "service", service, sizeof service); /* both optional */
        (void)challenge_param(challenge, "scope", scope, sizeof scope);
        char *service_q = curl_easy_escape(c->curl, service, 0), *scope_q = curl_easy_escape(c->curl, scope, 0);
        r = service_q && scope_q ? asprintf(&url, "%s%sservice=%s%s%s", realm, strchr(realm, '?') ? "&" : "?", service_q,
                                            scope[0] ? "&scope=" : "", scope[0] ? scope_q : "")
                                 : -1;
        curl_free(service_q);
        curl_free(scope_q);
        if (r < 0)
                return -ENOMEM;

        struct request rq = {.method = "GET", .url = url, .body_fd = -1, .sink = buffer_append, .userdata = &b,
                             .to_token_service = true};
        r = perform_once(c, &rq);
        url_host(realm, host, sizeof host);
        if (r >= 0 && rq.status != 200)
                r = kos_error_set(&c->error, -EACCES, "the token service %s (%s) answered HTTP %ld%s%.200s", realm, host, rq.status,
                              rq.error_body_len ? ": " : "", rq.error_body);
        json_t *root = r >= 0 ? json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, NULL) : NULL;
        free(b.data);
        if (r < 0)
                return r;
        const char *token = json_string_value(json_object_get(root, "token"));
        if (!token)
                token = json_string_value(json_object_get(root, "access_token"));
        if (!token || !token_valid(token)) {
                json_decref(root);
                return kos_error_set(&c->error, -EACCES, "the token service %s gave no usable token", realm);
        }
        free(c->token);
        c->token = strdup(token);
        json_decref(root);
        if (!c->token)
                return -ENOMEM;
        c->auth = AUTH_BEARER;
        return 0;
}

/* After a 401 from the registry's own origin: 1 when credentials to try
 * again with are in place, 0 when there is nothing more to try. */
static int answer_challenge(struct kos_oci_client *c, const struct request *rq) {
        if (rq->header_too_long)
                return kos_error_set(&c->error, -EACCES, "%s %s: the registry's challenge is over %d bytes", rq->method, rq->url,
                                 HEADER_VALUE_MAX);
        if (strncasecmp(rq->challenge, "Bearer ", 7) == 0) {
                int r = fetch_token(c, rq->challenge + 7);
                return r < 0 ? r : 1;
        }
        if (strncasecmp(rq->challenge, "Basic", 5) == 0 && c->credentials && c->auth != AUTH_BASIC) {
                c->auth = AUTH_BASIC;
                return 1;
        }
        return 0;
}

static bool is_redirect(long status) {
        return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* The URL a redirect of rq names (relative to rq->url), into *ret; refused
 * when it is not http(s), or goes from https to http. */
static int redirect_target(struct kos_oci_client *c, const struct request *rq, char **ret) {
        char host[KOS_OCI_HOST_MAX + 16];
        struct origin from, to;
        CURLU *u = curl_url();
        char *next = NULL;
        int r = 0;

        if (!u)
                return -ENOMEM;
        if (!rq->location[0] || rq->header_too_long || curl_url_set(u, CURLUPART_URL, rq->url, 0) != CURLUE_OK ||
            curl_url_set(u, CURLUPART_URL, rq->location, 0) != CURLUE_OK || curl_url_get(u, CURLUPART_URL, &next, 0) != CURLUE_OK ||
            url_origin(next, &to) < 0 || url_origin(rq->url, &from) < 0)
                r = kos_error_set(&c->error, -EPROTO, "%s %s: HTTP %ld with no usable Location (%.200s)", rq->method, rq->url, rq->status,
                              rq->location);
        else if (from.https && !to.https)
                r = kos_error_set(&c->error, -EPROTO, "%s %s: refused a redirect from https to plain http (to %s)", rq->method, rq->url,
                              url_host(next, host, sizeof host));
        else if (!(*ret = strdup(next)))
                r = -ENOMEM;
        curl_free(next);
        curl_url_cleanup(u);
        return r;
}

/* A request: redirects followed (GET and HEAD; at most
 * KOS_OCI_REDIRECTS_MAX), authenticating when the registry's own origin
 * asks (at most twice: a token for a wider scope may be needed after one
 * for pulling), all within the request's bound. rq->url is the last URL
 * asked on return. */
static int perform(struct kos_oci_client *c, struct request *rq, char **hop) {
        char host[KOS_OCI_HOST_MAX + 16];
        bool follows = strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0;
        int redirects = 0, challenges = 0, r;

        c->bound_ns = step_bound_ns(c, rq->expected_size);
        c->deadline_ns = kos_now_ns() + c->bound_ns;
        if (c->outer_deadline_ns && c->outer_deadline_ns < c->deadline_ns) {
                c->deadline_ns = c->outer_deadline_ns; /* a chunked fetch's whole bound ends first */
                c->bound_ns = c->outer_bound_ns;
        }
        for (;;) {
                if ((r = perform_once(c, rq)) < 0)
                        return r;
                if (follows && is_redirect(rq->status)) {
                        char *next = NULL;
                        if (++redirects > KOS_OCI_REDIRECTS_MAX)
                                return kos_error_set(&c->error, -EPROTO, "%s %s: more than %d redirects", rq->method, rq->url,
                                                 KOS_OCI_REDIRECTS_MAX);
                        if ((r = redirect_target(c, rq, &next)) < 0)
                                return r;
                        free(*hop);
                        rq->url = *hop = next;
                        continue;
                }
                if (rq->status != 401)
                        return 0;
                if (!rq->to_registry)
                        return kos_error_set(&c->error, -EACCES,
                                         "%s %s: %s, where the registry %s redirected, asks for credentials: refused, they "
                                         "go only to the registry itself",
                                         rq->method, rq->url, url_host(rq->url, host, sizeof host), c->base);
                if (++challenges > 2 || (r = answer_challenge(c, rq)) == 0)
                        break;
                if (r < 0)
                        return r;
        }
        return kos_error_set(&c->error, -EACCES, "%s %s: HTTP 401 unauthorized%s", rq->method, rq->url,
                         c->credentials ? " (the credentials were refused)" : " (give credentials with --user or --user-file)");
}

static int http_error(struct kos_oci_client *c, struct request *rq) {
        /* The registry's error body is JSON from a peer: printed with %.200s, never parsed. */
        for (size_t i = 0; i < rq->error_body_len; i++)
                if ((unsigned char)rq->error_body[i] < 0x20 || (unsigned char)rq->error_body[i] >= 0x7f)
                        rq->error_body[i] = ' ';
        return kos_error_set(&c->error, rq->status == 404 ? -ENOENT : -EIO, "%s %s: HTTP %ld%s%.200s", rq->method, rq->url, rq->status,
                         rq->error_body_len ? ": " : "", rq->error_body);
}

static int api_url(struct kos_oci_client *c, const char *kind, const char *what, char **ret) {
        return asprintf(ret, "%s/v2/%s/%s/%s", c->base, c->ref.repository, kind, what) < 0 ? -ENOMEM : 0;
}

int kos_oci_blob_exists(struct kos_oci_client *c, const char *digest) {
        _cleanup_free_ char *url = NULL, *hop = NULL;
        int r;

        if (!digest_valid(digest))
                return -EINVAL;
        if ((r = api_url(c, "blobs", digest, &url)) < 0)
                return r;
        struct request rq = {.method = "HEAD", .url = url, .body_fd = -1};
        if ((r = perform(c, &rq, &hop)) < 0)
                return r;
        if (rq.status == 200)
                return 1;
        if (rq.status == 404)
                return 0;
        return http_error(c, &rq);
}

/* The Location of an upload, absolute, with ?digest= (or &digest=) added:
 * the PUT carries the credentials, so it must stay on the registry's origin. */
static int upload_url(struct kos_oci_client *c, const char *location, const char *digest, char **ret) {
        const char *sep = strchr(location, '?') ? "&" : "?";
        char host[KOS_OCI_HOST_MAX + 16];
        struct origin o;

        if (location[0] == '/' && location[1] != '/')
                return asprintf(ret, "%s%s%sdigest=%s", c->base, location, sep, digest) < 0 ? -ENOMEM : 0;
        if (url_origin(location, &o) < 0)
                return kos_error_set(&c->error, -EPROTO, "the registry answered an upload with Location \"%.200s\"", location);
        if (!origin_equal(&o, &c->origin))
                return kos_error_set(&c->error, -EPROTO,
                                 "the registry %s answered an upload with a Location on another origin (%s%s): refused, "
                                 "credentials go only to the registry itself",
                                 c->base, o.https ? "https://" : "http://", url_host(location, host, sizeof host));
        return asprintf(ret, "%s%sdigest=%s", location, sep, digest) < 0 ? -ENOMEM : 0;
}

int kos_oci_blob_upload(struct kos_oci_client *c, const char *digest, const void *data, int fd, uint64_t size) {
        _cleanup_free_ char *url = NULL, *put_url = NULL, *hop = NULL;
        int r;

        if (!digest_valid(digest))
                return -EINVAL;
        if (asprintf(&url, "%s/v2/%s/blobs/uploads/", c->base, c->ref.repository) < 0)
                return -ENOMEM;
        struct request post = {.method = "POST", .url = url, .body_fd = -1};
        if ((r = perform(c, &post, &hop)) < 0)
                return r;
        if (post.status != 202 || !post.location[0] || post.header_too_long)
                return post.status == 202 ? kos_error_set(&c->error, -EPROTO, "POST %s: no usable Location", url) : http_error(c, &post);
        if ((r = upload_url(c, post.location, digest, &put_url)) < 0)
                return r;
        struct request put = {.method = "PUT", .url = put_url, .content_type = "application/octet-stream",
                              .body = data, .body_fd = data ? -1 : fd, .body_size = size, .expected_size = size};
        if ((r = perform(c, &put, &hop)) < 0)
                return r;
        return put.status == 201 ? 0 : http_error(c, &put);
}

int kos_oci_blob_get(struct kos_oci_client *c, const char *digest, uint64_t size, uint64_t offset, kos_oci_body_fn body,
                     void *userdata) {
        _cleanup_free_ char *url = NULL, *hop = NULL;
        int r;

        if (!digest_valid(digest))
                return -EINVAL;
        if ((r = api_url(c, "blobs", digest, &url)) < 0)
                return r;
        struct request rq = {.method = "GET", .url = url, .body_fd = -1, .range_from = offset,
                             .expected_size = size > offset ? size - offset : 0, .sink = body, .userdata = userdata};
        if ((r = perform(c, &rq, &hop)) < 0)
                return r;
        if (rq.status == 200 || (rq.status == 206 && offset > 0))
                return 0;
        return http_error(c, &rq);
}

int kos_oci_blob_get_small(struct kos_oci_client *c, const char *digest, size_t cap, char **ret, size_t *ret_len) {
        struct buffer b = {.cap = cap};
        int r = kos_oci_blob_get(c, digest, cap, 0, buffer_append, &b);

        if (r == -EFBIG)
                r = kos_error_set(&c->error, r, "blob %s is larger than %zu bytes", digest, cap);
        return buffer_take(&b, r, ret, ret_len);
}

int kos_oci_manifest_get(struct kos_oci_client *c, const char *media_type, size_t cap, char **ret, size_t *ret_len) {
        _cleanup_free_ char *url = NULL, *hop = NULL;
        struct buffer b = {.cap = cap};
        int r;

        if ((r = api_url(c, "manifests", c->ref.tag, &url)) < 0)
                return r;
        struct request rq = {.method = "GET", .url = url, .accept = media_type, .body_fd = -1,
                             .sink = buffer_append, .userdata = &b};
        r = perform(c, &rq, &hop);
        if (r == -EFBIG)
                r = kos_error_set(&c->error, r, "the manifest %s is larger than %zu bytes", url, cap);
        if (r >= 0 && rq.status != 200)
                r = http_error(c, &rq);
        return buffer_take(&b, r, ret, ret_len);
}

int kos_oci_manifest_put(struct kos_oci_client *c, const char *media_type, const char *data, size_t len) {
        return kos_oci_manifest_put_at(c, c->ref.tag, media_type, data, len);
}

int kos_oci_manifest_put_at(struct kos_oci_client *c, const char *reference, const char *media_type, const char *data,
                            size_t len) {
        _cleanup_free_ char *url = NULL, *hop = NULL;
        int r;

        if (!tag_valid(reference) && !digest_valid(reference))
                return -EINVAL;
        if ((r = api_url(c, "manifests", reference, &url)) < 0)
                return r;
        struct request rq = {.method = "PUT", .url = url, .content_type = media_type, .body = data, .body_fd = -1,
                             .body_size = len, .expected_size = len};
        if ((r = perform(c, &rq, &hop)) < 0)
                return r;
        return rq.status == 201 ? 0 : http_error(c, &rq);
}

const struct kos_oci_ref *kos_oci_client_ref(const struct kos_oci_client *c) {
        return &c->ref;
}

void kos_oci_client_set_deadline(struct kos_oci_client *c, uint64_t expected_size) {
        if (expected_size == UINT64_MAX) {
                c->outer_deadline_ns = c->outer_bound_ns = 0;
                return;
        }
        c->outer_bound_ns = step_bound_ns(c, expected_size);
        c->outer_deadline_ns = kos_now_ns() + c->outer_bound_ns;
}

void kos_oci_digest_string(const uint8_t sha256[static KOS_SHA256_LEN], char ret[static KOS_OCI_DIGEST_LEN + 1]) {
        memcpy(ret, "sha256:", 7);
        kos_hex_encode(sha256, KOS_SHA256_LEN, ret + 7);
}
