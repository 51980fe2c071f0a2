"""The Scrapy baseline: the same work as our crawl (follow every same-site link, read every
``<a>``/``<area>`` href and ``<iframe>`` src, keep the Amazon ones), run in a throwaway venv by
``bench/scan_bench.py``. Scrapy is never a project dependency.

Usage: python scrapy_spider.py START_URL CONCURRENCY  → prints one JSON line of figures.
"""

import json
import sys
import time
from urllib.parse import urlsplit

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.linkextractors import LinkExtractor


class SiteSpider(scrapy.Spider):
    name = "site"

    def __init__(self, start: str, **kwargs):
        super().__init__(**kwargs)
        self.start_urls = [start]
        parts = urlsplit(start)
        self.prefix = f"{parts.scheme}://{parts.netloc}/"
        self.links = LinkExtractor(tags=("a", "area"))
        self.pages = 0
        self.amazon_links = 0
        self.first = None
        self.last = None

    def parse(self, response):
        if not isinstance(response, scrapy.http.HtmlResponse):
            return
        now = time.perf_counter()
        self.first = self.first or now
        self.last = now
        self.pages += 1
        for href in response.css("a::attr(href), area::attr(href), iframe::attr(src)").getall():
            url = response.urljoin(href)
            if "amazon." in url or "amzn." in url or "amazon-adsystem" in url:
                self.amazon_links += 1
        for link in self.links.extract_links(response):
            if link.url.startswith(self.prefix):
                yield response.follow(link, callback=self.parse)


def main() -> None:
    start, concurrency = sys.argv[1], int(sys.argv[2])
    process = CrawlerProcess(
        settings={
            "LOG_LEVEL": "ERROR",
            "ROBOTSTXT_OBEY": True,
            "CONCURRENT_REQUESTS": concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
            "DOWNLOAD_DELAY": 0,
            "COOKIES_ENABLED": False,
            "TELNETCONSOLE_ENABLED": False,
            "RETRY_TIMES": 2,
            "REDIRECT_ENABLED": False,  # like ours: a redirect into Amazon is never followed
            "USER_AGENT": "AffiliateLink-baseline",
        }
    )
    crawler = process.create_crawler(SiteSpider)
    t0 = time.perf_counter()
    process.crawl(crawler, start=start)
    process.start()
    wall = time.perf_counter() - t0
    spider = crawler.spider
    stats = crawler.stats.get_stats()
    print(
        json.dumps(
            {
                "pages": spider.pages,
                "amazon_links": spider.amazon_links,
                "responses": stats.get("response_received_count", 0),
                "wall_seconds": wall,
                "crawl_seconds": (spider.last or 0) - (spider.first or 0),
            }
        )
    )


if __name__ == "__main__":
    main()
