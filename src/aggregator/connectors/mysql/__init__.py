"""MySQL / MariaDB source and destination (pymysql)."""

from aggregator.connectors.mysql.destination import MySQLDestination, MySQLDestinationConfig
from aggregator.connectors.mysql.source import MySQLSource, MySQLSourceConfig

__all__ = ["MySQLDestination", "MySQLDestinationConfig", "MySQLSource", "MySQLSourceConfig"]
