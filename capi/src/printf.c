/* The variadic functions of libevent's ABI, which stable Rust cannot define: each formats
 * through its va_list twin, implemented in Rust. */
#include <stdarg.h>
#include <stddef.h>

struct evbuffer;
int evbuffer_add_vprintf(struct evbuffer *buf, const char *fmt, va_list ap);
int evutil_vsnprintf(char *buf, size_t buflen, const char *fmt, va_list ap);

int evbuffer_add_printf(struct evbuffer *buf, const char *fmt, ...)
{
	va_list ap;
	int r;
	va_start(ap, fmt);
	r = evbuffer_add_vprintf(buf, fmt, ap);
	va_end(ap);
	return r;
}

int evutil_snprintf(char *buf, size_t buflen, const char *fmt, ...)
{
	va_list ap;
	int r;
	va_start(ap, fmt);
	r = evutil_vsnprintf(buf, buflen, fmt, ap);
	va_end(ap);
	return r;
}
