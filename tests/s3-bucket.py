#!/usr/bin/env python3
# hyperfile tests: make or remove a bucket on an external S3 server
# (tests/functions.sh start_ext_s3), with botocore.
#
#   s3-bucket.py create BUCKET
#   s3-bucket.py delete BUCKET    every object and unfinished multipart
#                                 upload in it, then the bucket
#   s3-bucket.py uploads BUCKET   unfinished multipart uploads: one
#                                 "KEY UPLOAD-ID" line each
#   s3-bucket.py ls BUCKET        objects: one "KEY SIZE" line each
#
# Endpoint, region and keys come from S3_ENDPOINT, AWS_REGION,
# AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; path-style addressing.
import os
import sys

import botocore.session
from botocore.config import Config


def client():
    s = botocore.session.get_session()
    return s.create_client(
        "s3", endpoint_url=os.environ["S3_ENDPOINT"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"},
                      retries={"max_attempts": 3}))


def uploads(c, bucket):
    kw = {}
    while True:
        r = c.list_multipart_uploads(Bucket=bucket, **kw)
        for u in r.get("Uploads", []):
            yield u["Key"], u["UploadId"]
        if not r.get("IsTruncated"):
            return
        kw = {"KeyMarker": r["NextKeyMarker"],
              "UploadIdMarker": r["NextUploadIdMarker"]}


def delete(c, bucket):
    for key, uid in list(uploads(c, bucket)):
        c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=uid)
    kw = {}
    while True:
        r = c.list_objects_v2(Bucket=bucket, **kw)
        keys = [{"Key": o["Key"]} for o in r.get("Contents", [])]
        if keys:
            d = c.delete_objects(Bucket=bucket,
                                 Delete={"Objects": keys, "Quiet": True})
            if d.get("Errors"):
                sys.exit("s3-bucket: deleting in %s: %s" %
                         (bucket, d["Errors"][0]))
        if not r.get("IsTruncated"):
            break
        kw = {"ContinuationToken": r["NextContinuationToken"]}
    c.delete_bucket(Bucket=bucket)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("create", "delete",
                                                 "uploads", "ls"):
        sys.exit("usage: s3-bucket.py create|delete|uploads|ls BUCKET")
    cmd, bucket = sys.argv[1:]
    c = client()
    if cmd == "create":
        c.create_bucket(Bucket=bucket)
    elif cmd == "delete":
        delete(c, bucket)
    elif cmd == "uploads":
        for key, uid in uploads(c, bucket):
            print(key, uid)
    else:
        kw = {}
        while True:
            r = c.list_objects_v2(Bucket=bucket, **kw)
            for o in r.get("Contents", []):
                print(o["Key"], o["Size"])
            if not r.get("IsTruncated"):
                break
            kw = {"ContinuationToken": r["NextContinuationToken"]}


if __name__ == "__main__":
    main()
