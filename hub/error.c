/*
 * error.c - the one translation point from a Hub failure to an errno and to
 * a log line (the sshfs sftp_error_to_errno pattern).
 */
#include "hub.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>

int hub_error_errno(const struct hub_error *err)
{
	switch (err->status) {
	case 401:
	case 403:
		return EACCES;
	case 404:
	case 410:
		return ENOENT;
	default:
		return EIO;
	}
}

bool hub_error_transient(const struct hub_error *err)
{
	return err->status == 0 || err->status == 408 || err->status == 429 ||
	       err->status >= 500;
}

const char *hub_error_describe(const struct hub_error *err, char *buf,
			       size_t size)
{
	const char *sep = err->code[0] && err->message[0] ? ": " : "";

	if (err->status)
		snprintf(buf, size, "HTTP %d%s%s%s%s", err->status,
			 err->code[0] || err->message[0] ? " " : "", err->code,
			 sep, err->message);
	else if (err->transport)
		snprintf(buf, size, "%s (curl %d)%s%s",
			 curl_easy_strerror((CURLcode)err->transport),
			 err->transport, err->message[0] ? ": " : "",
			 err->message);
	else
		snprintf(buf, size, "%s",
			 err->message[0] ? err->message : "unknown error");
	return buf;
}
