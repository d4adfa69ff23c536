"""The RabbitMQ transport, written once for every service and knowing none of them.

    topology.py    names and routes from the application's table; the partition of a key
    connection.py  connect (capped-backoff retry), declare, publish with confirms
    delivery.py    the one delivery path (parse → handle → retry → ack or dead-letter), in
                   order per key
    partitions.py  single-active-consumer partitions shared by replicas
    rpc.py         request/reply
    lock.py        a lock across processes
    bus.py         all of it as one `Transport`
    codec.py       what the application tells it about its messages

Nothing here imports the application's contracts: `gistsync.broker` binds them.
"""
