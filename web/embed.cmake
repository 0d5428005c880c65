# web/embed.cmake - turns web/index.html into a C header for gru-serve (pure CMake, no xxd):
#   cmake -DIN=web/index.html -DOUT=page_html.h -P web/embed.cmake
# The header defines
#   static const unsigned char srv_page_html[]   the page's bytes (no terminating NUL)
#   SRV_PAGE_CSP                                 the Content-Security-Policy for it: nothing but
#                                                'self', and the page's one inline <script> and one
#                                                inline <style> allowed by their SHA-256 hashes
#   SRV_PAGE_ETAG                                a strong ETag: the first 16 hex digits of SHA-256
# The page must hold exactly one "<script>" ... "</script>" and one "<style>" ... "</style>"
# (no attributes on the opening tags): the hashes cover exactly the bytes between them.
cmake_minimum_required(VERSION 3.18)
if(NOT IN OR NOT OUT)
  message(FATAL_ERROR "usage: cmake -DIN=index.html -DOUT=page_html.h -P embed.cmake")
endif()

# Base64 of the bytes that the hex string spells (CSP hashes are base64 of the raw digest).
function(hex_to_base64 hex out)
  set(abc "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
  string(LENGTH "${hex}" n)
  set(res "")
  set(i 0)
  while(i LESS n)
    math(EXPR left "${n} - ${i}")
    if(left GREATER_EQUAL 6)
      string(SUBSTRING "${hex}" ${i} 6 chunk)
      set(pad 0)
    elseif(left EQUAL 4)
      string(SUBSTRING "${hex}" ${i} 4 chunk)
      string(APPEND chunk "00")
      set(pad 1)
    else()
      string(SUBSTRING "${hex}" ${i} 2 chunk)
      string(APPEND chunk "0000")
      set(pad 2)
    endif()
    math(EXPR v "0x${chunk}")
    set(quad "")
    foreach(shift 18 12 6 0)
      math(EXPR idx "(${v} >> ${shift}) & 63")
      string(SUBSTRING "${abc}" ${idx} 1 c)
      string(APPEND quad "${c}")
    endforeach()
    if(pad EQUAL 1)
      string(SUBSTRING "${quad}" 0 3 quad)
      string(APPEND quad "=")
    elseif(pad EQUAL 2)
      string(SUBSTRING "${quad}" 0 2 quad)
      string(APPEND quad "==")
    endif()
    string(APPEND res "${quad}")
    math(EXPR i "${i} + 6")
  endwhile()
  set(${out} "${res}" PARENT_SCOPE)
endfunction()

# The CSP source 'sha256-...' of the bytes between <tag> and </tag> (exactly one such element).
function(inline_hash text tag out)
  string(FIND "${text}" "<${tag}>" open)
  string(FIND "${text}" "<${tag}>" open_last REVERSE)
  string(FIND "${text}" "</${tag}>" close)
  string(FIND "${text}" "</${tag}>" close_last REVERSE)
  if(open EQUAL -1 OR close EQUAL -1 OR NOT open EQUAL open_last OR NOT close EQUAL close_last
     OR close LESS open)
    message(FATAL_ERROR "${IN}: need exactly one <${tag}> ... </${tag}> (no attributes on the tag)")
  endif()
  string(LENGTH "<${tag}>" taglen)
  math(EXPR start "${open} + ${taglen}")
  math(EXPR len "${close} - ${start}")
  # Re-read the raw bytes by offset: string(FIND) counts bytes, as file(READ OFFSET) does.
  file(READ "${IN}" body OFFSET ${start} LIMIT ${len})
  string(SHA256 digest "${body}")
  hex_to_base64("${digest}" b64)
  set(${out} "'sha256-${b64}'" PARENT_SCOPE)
endfunction()

file(READ "${IN}" text)
inline_hash("${text}" script script_src)
inline_hash("${text}" style style_src)
set(csp "default-src 'none'; script-src ${script_src}; style-src ${style_src}; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

file(SHA256 "${IN}" page_digest)
string(SUBSTRING "${page_digest}" 0 16 etag)

file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" nhex)
math(EXPR nbytes "${nhex} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){20})" "\\1\n    " bytes "${bytes}")

file(WRITE "${OUT}.tmp"
"/* Generated from web/index.html by web/embed.cmake at build time: do not edit. */
#ifndef SRV_PAGE_HTML_H
#define SRV_PAGE_HTML_H

#define SRV_PAGE_CSP \"${csp}\"
#define SRV_PAGE_ETAG \"\\\"${etag}\\\"\"
#define SRV_PAGE_LEN ${nbytes}

static const unsigned char srv_page_html[${nbytes}] = {
    ${bytes}
};

#endif
")
file(RENAME "${OUT}.tmp" "${OUT}")
