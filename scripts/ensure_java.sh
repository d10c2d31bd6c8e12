#!/usr/bin/env bash
# Spark (modelport.spark and its tests) runs on Java 17 or 21. Found on PATH, in JAVA_HOME or
# under /usr/lib/jvm (modelport.spark.session.find_java looks there too): nothing to do.
# Else, as root with apt: install Debian's headless JRE. Else: say what to do, and go on (the
# rest of modelport needs no Java).
set -u
if command -v java >/dev/null 2>&1 || [ -x "${JAVA_HOME:-/nonexistent}/bin/java" ] \
    || ls /usr/lib/jvm/*/bin/java >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "no Java found: installing openjdk-17-jre-headless (for Spark)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    openjdk-17-jre-headless >/dev/null && exit 0
fi
echo "note: no Java found. Spark (modelport.spark and its tests) needs Java 17: install" \
  "openjdk-17-jre-headless, or a JDK from adoptium.net and set JAVA_HOME" >&2
exit 0
