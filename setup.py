"""Packaging for ssdbook, driven by settings.ini (nbdev 2's file). Written without pkg_resources."""
from configparser import ConfigParser
from setuptools import find_packages, setup

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
c = cfg['DEFAULT']

setup(
    name=c['lib_name'],
    version=c['version'],
    description=c['description'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    author=c['author'],
    author_email=c['author_email'],
    url=c['git_url'],
    license='Apache-2.0',
    packages=find_packages(include=['ssdbook', 'ssdbook.*']),
    package_data={'ssdbook': ['reference_data/*.pt', 'reference_data/*.json', 'reference_data/*.md']},
    include_package_data=True,
    python_requires='>=' + c['min_python'],
    install_requires=c['requirements'].split(),
    extras_require={'dev': c['dev_requirements'].split(), 'app': c['app_requirements'].split()},
    entry_points={
        'console_scripts': c['console_scripts'].split(),
        'nbdev': [f"{c['lib_path']}={c['lib_path']}._modidx:d"],
    },
    zip_safe=False,
)
