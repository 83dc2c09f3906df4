"""Starts the moto server for the tests (same arguments as `moto_server`), with costs that grow
with a queue's length, or are paid on every request, taken out.

moto recomputes a queue's whole attribute map, counting every message of the queue by reading
the clock for each, each time it reads one attribute: several times per message sent, and about
sixty times per message received (the retention check asks for all attributes, one name at a
time). A queue of a few thousand messages then answers in seconds per call, and a test that
moves a large file through a queue runs for hours. Real SQS has no such cost.

Here the attribute map is computed once per request and queue, and reused for the rest of that
request (a request sees one snapshot of the queue's counters, as SQS's approximate counters are),
and the SQS model reads the clock with `time.time()` instead of building a datetime each time
(the same number). Per request, the server also resolved the backend of the request's host by
listing moto's modules on disk, and logged a line: the first is remembered per host, the second
is off.

One race is closed: deleting a message rebuilds the queue's list of messages from a copy, without
the lock that sending holds, so a message sent meanwhile could be lost, and two deletes at once
could bring a deleted message back. Deletes take the queue's lock here. DynamoDB requests run one
at a time (moto's DynamoDB has no locking at all; see below). Nothing else of moto's behaviour changes: messages, visibility, redrive, FIFO rules and
the answers themselves are moto's own.
"""

import logging
import sys
import threading
import time

from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main
from moto.sqs import models

_scope = threading.local()
_attributes = models.Queue.attributes.fget


def _memoised_attributes(queue):
    cache = getattr(_scope, "cache", None)
    if cache is None:
        return _attributes(queue)
    key = id(queue)
    if key not in cache:
        cache[key] = _attributes(queue)
    return cache[key]


def _one_snapshot_per_call(method):
    def wrapper(*args, **kwargs):
        outer = getattr(_scope, "cache", None)
        if outer is not None:
            return method(*args, **kwargs)
        _scope.cache = {}
        try:
            return method(*args, **kwargs)
        finally:
            _scope.cache = None

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


_unix_time = models.unix_time
_unix_time_millis = models.unix_time_millis


def _now(dt=None):
    return time.time() if dt is None else _unix_time(dt)


def _now_millis(dt=None):
    return time.time() * 1000.0 if dt is None else _unix_time_millis(dt)


models.unix_time = _now
models.unix_time_millis = _now_millis
models.Queue.attributes = property(_memoised_attributes)
for _name in (
    "send_message",
    "send_message_batch",
    "receive_message",
    "get_queue_attributes",
):
    setattr(
        models.SQSBackend,
        _name,
        _one_snapshot_per_call(getattr(models.SQSBackend, _name)),
    )

_delete_message = models.Queue.delete_message


def _locked_delete_message(self, receipt_handle):
    with self._messages_lock:
        return _delete_message(self, receipt_handle)


models.Queue.delete_message = _locked_delete_message

# moto's DynamoDB backend has no locking: TransactWriteItems deep-copies tables that other
# threads are writing ("dictionary changed size during iteration", answered as an HTML 500), and
# rolls a cancelled transaction back by restoring that copy, undoing writes made meanwhile. Real
# DynamoDB serialises conflicting writes per item; here every DynamoDB request runs alone.
from moto.dynamodb.responses import DynamoHandler  # noqa: E402

_ddb_lock = threading.RLock()
_ddb_call_action = DynamoHandler.call_action


def _serialised_call_action(self):
    with _ddb_lock:
        return _ddb_call_action(self)


DynamoHandler.call_action = _serialised_call_action

# A transaction deep-copies every table it touches, whole, once per action, to roll back: with a
# table of a few thousand items every transaction costs seconds. Here it saves only the items it
# touches (each as it was, or absent) and puts those back when the transaction is cancelled; the
# outcome is moto's own. Safe under the lock above: no other DynamoDB request runs meanwhile.
import copy  # noqa: E402
import types  # noqa: E402

from moto.dynamodb import models as ddb_models  # noqa: E402
from moto.dynamodb.models.dynamo_type import Item  # noqa: E402
from moto.dynamodb.models.table import Table  # noqa: E402

_transact_write_items = ddb_models.DynamoDBBackend.transact_write_items
_no_copy = types.SimpleNamespace(deepcopy=lambda obj, memo=None: obj)


def _undo_log(backend, transact_items):
    saved = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = backend.tables.get(op.get("TableName"))
        if table is None:
            continue
        try:
            if "Item" in op:
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                key = op["Key"]
            hash_key, range_key = backend.get_keys_value(table, key)
        except Exception:  # moto reports a malformed action itself
            continue
        before = table.get_item(hash_key, range_key)
        saved.append((table, hash_key, range_key, copy.deepcopy(before)))
    return saved


def _restore(saved):
    for table, hash_key, range_key, before in reversed(saved):
        table.delete_item(hash_key, range_key)
        if before is not None:
            if range_key is not None:
                table.items[hash_key][range_key] = before
            else:
                table.items[hash_key] = before


def _transact_with_item_undo(self, transact_items):
    saved = _undo_log(self, transact_items)
    ddb_models.copy = _no_copy
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        _restore(saved)
        raise
    finally:
        ddb_models.copy = copy


ddb_models.DynamoDBBackend.transact_write_items = _transact_with_item_undo


# moto keeps every DynamoDB item and table it ever built (copies included) for its own
# bookkeeping: a run of transactions then holds gigabytes. Nothing is kept here.
class _Untracked(list):
    def append(self, _instance):
        pass


for _model in (Item, Table):
    _model.instances_tracked = _Untracked()

_backend_for_host = DomainDispatcherApplication.get_backend_for_host


def _remembered_backend_for_host(self, host):
    memo = self.__dict__.setdefault("_backend_memo", {})
    if host not in memo:
        memo[host] = _backend_for_host(self, host)
    return memo[host]


DomainDispatcherApplication.get_backend_for_host = _remembered_backend_for_host
logging.getLogger("werkzeug").setLevel(logging.WARNING)

if __name__ == "__main__":
    main(sys.argv[1:])
